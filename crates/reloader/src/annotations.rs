//! The `reloader.stakater.com/*` annotations and upstream's decision order: does a change of
//! one ConfigMap or Secret reload one workload, and in which mode.

use std::collections::BTreeMap;

use regex::Regex;

use crate::hash::SourceKind;

/// `reloader.stakater.com/last-reloaded-from`: the pod-template annotation of the annotations
/// strategy.
pub const LAST_RELOADED_FROM: &str = "reloader.stakater.com/last-reloaded-from";
/// `reloader.stakater.com/rollout-strategy` (Argo Rollouts).
pub const ROLLOUT_STRATEGY: &str = "reloader.stakater.com/rollout-strategy";
/// Exclude lists (workload metadata only; exact names).
pub const CONFIGMAPS_EXCLUDE: &str = "configmaps.exclude.reloader.stakater.com/reload";
/// Exclude lists (workload metadata only; exact names).
pub const SECRETS_EXCLUDE: &str = "secrets.exclude.reloader.stakater.com/reload";
/// Exclude lists (workload metadata only; exact names).
pub const SECRET_PROVIDER_CLASSES_EXCLUDE: &str =
    "secretproviderclasses.exclude.reloader.stakater.com/reload";
/// `secretproviderclass.reloader.stakater.com/auto` (no flag renames it).
pub const SECRET_PROVIDER_CLASS_AUTO: &str = "secretproviderclass.reloader.stakater.com/auto";
/// `secretproviderclass.reloader.stakater.com/reload` (no flag renames it).
pub const SECRET_PROVIDER_CLASS_RELOAD: &str = "secretproviderclass.reloader.stakater.com/reload";
/// Beyond upstream, opt-in on a workload: reload only when a key it references changes
/// (`env[].valueFrom.*KeyRef.key`, volume `items[].key`); a whole-object reference (`envFrom`,
/// a volume without items) still counts every key.
pub const REFERENCED_KEYS_ONLY: &str = "reloader.strongroom.dev/referenced-keys-only";
/// Beyond upstream, on workload metadata (never the pod template, so writing it rolls
/// nothing): the hash of each source as last applied, `{"secret/db": "<hash>"}`, so the
/// annotations strategy can tell after a restart what changed while it was down.
pub const APPLIED_HASHES: &str = "reloader.strongroom.dev/applied-hashes";

/// The annotation keys, with upstream's defaults; ten of them can be renamed by flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// `reloader.stakater.com/auto`.
    pub auto: String,
    /// `configmap.reloader.stakater.com/auto`.
    pub configmap_auto: String,
    /// `secret.reloader.stakater.com/auto`.
    pub secret_auto: String,
    /// `configmap.reloader.stakater.com/reload`.
    pub configmap_reload: String,
    /// `secret.reloader.stakater.com/reload`.
    pub secret_reload: String,
    /// `reloader.stakater.com/search`.
    pub search: String,
    /// `reloader.stakater.com/match` (on the ConfigMap or Secret).
    pub match_: String,
    /// `reloader.stakater.com/ignore` (on the ConfigMap or Secret).
    pub ignore: String,
    /// `deployment.reloader.stakater.com/pause-period`.
    pub pause_period: String,
    /// `deployment.reloader.stakater.com/paused-at`.
    pub paused_at: String,
}

impl Default for Keys {
    fn default() -> Self {
        Self {
            auto: "reloader.stakater.com/auto".into(),
            configmap_auto: "configmap.reloader.stakater.com/auto".into(),
            secret_auto: "secret.reloader.stakater.com/auto".into(),
            configmap_reload: "configmap.reloader.stakater.com/reload".into(),
            secret_reload: "secret.reloader.stakater.com/reload".into(),
            search: "reloader.stakater.com/search".into(),
            match_: "reloader.stakater.com/match".into(),
            ignore: "reloader.stakater.com/ignore".into(),
            pause_period: "deployment.reloader.stakater.com/pause-period".into(),
            paused_at: "deployment.reloader.stakater.com/paused-at".into(),
        }
    }
}

impl Keys {
    fn typed_auto(&self, kind: SourceKind) -> &str {
        match kind {
            SourceKind::ConfigMap => &self.configmap_auto,
            SourceKind::Secret => &self.secret_auto,
            SourceKind::SecretProviderClass => SECRET_PROVIDER_CLASS_AUTO,
        }
    }

    fn reload(&self, kind: SourceKind) -> &str {
        match kind {
            SourceKind::ConfigMap => &self.configmap_reload,
            SourceKind::Secret => &self.secret_reload,
            SourceKind::SecretProviderClass => SECRET_PROVIDER_CLASS_RELOAD,
        }
    }
}

/// Go's `strconv.ParseBool`, with anything it refuses read as false (as upstream does).
pub fn go_true(value: Option<&String>) -> bool {
    matches!(
        value.map(String::as_str),
        Some("1" | "t" | "T" | "TRUE" | "true" | "True")
    )
}

/// A workload's reload settings for one source kind, read once when the workload is cached:
/// from its metadata, or, when none of the four keys is there, from its pod template
/// (all or nothing, as upstream).
#[derive(Debug, Clone, Default)]
pub struct WorkloadSettings {
    /// The `…/reload` list as anchored regexes (invalid entries dropped and logged).
    pub reload: Vec<Regex>,
    /// `reloader.stakater.com/auto`, raw.
    pub auto: Option<String>,
    /// The typed auto (`secret.…/auto` or `configmap.…/auto`), raw.
    pub typed_auto: Option<String>,
    /// `reloader.stakater.com/search == "true"`.
    pub search: bool,
    /// Names never reloading this workload (metadata only).
    pub exclude: Vec<String>,
}

impl WorkloadSettings {
    /// Reads the settings for `kind` from the workload's metadata and pod-template
    /// annotations. `workload` names the workload in the log line of an invalid regex.
    pub fn read(
        keys: &Keys,
        kind: SourceKind,
        metadata: &BTreeMap<String, String>,
        template: &BTreeMap<String, String>,
        workload: &str,
    ) -> Self {
        let four = [
            keys.reload(kind),
            keys.auto.as_str(),
            keys.typed_auto(kind),
            keys.search.as_str(),
        ];
        let from = if four.iter().any(|k| metadata.contains_key(*k)) {
            metadata
        } else {
            template
        };
        let reload = from
            .get(keys.reload(kind))
            .map(|list| anchored_regexes(list, workload))
            .unwrap_or_default();
        let exclude_key = match kind {
            SourceKind::ConfigMap => CONFIGMAPS_EXCLUDE,
            SourceKind::Secret => SECRETS_EXCLUDE,
            SourceKind::SecretProviderClass => SECRET_PROVIDER_CLASSES_EXCLUDE,
        };
        Self {
            reload,
            auto: from.get(&keys.auto).cloned(),
            typed_auto: from.get(keys.typed_auto(kind)).cloned(),
            search: from.get(&keys.search).is_some_and(|v| v == "true"),
            exclude: metadata
                .get(exclude_key)
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Whether the workload says anything about this kind (or `--auto-reload-all` applies).
    pub fn interested(&self, auto_reload_all: bool) -> bool {
        !self.reload.is_empty()
            || self.search
            || go_true(self.auto.as_ref())
            || go_true(self.typed_auto.as_ref())
            || (auto_reload_all && self.auto.is_none() && self.typed_auto.is_none())
    }
}

/// Each comma-separated entry as `^entry$`; invalid ones are logged and skipped.
fn anchored_regexes(list: &str, workload: &str) -> Vec<Regex> {
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .filter_map(|entry| match Regex::new(&format!("^{entry}$")) {
            Ok(re) => Some(re),
            Err(e) => {
                tracing::warn!(workload, entry, error = %e, "invalid reload pattern skipped");
                None
            }
        })
        .collect()
}

/// Whether and how a change of one source reloads one workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not this workload.
    Skip,
    /// Named in `…/reload`: reload even if nothing references the source (then the first
    /// container carries the variable).
    Named,
    /// `auto`, the typed auto, `search` + `match`, or `--auto-reload-all`: reload only if the
    /// workload references the source.
    Auto,
}

/// Upstream's decision order (`ShouldReload`) for one source and one workload's settings.
/// The ignored-workload-type check comes before, in the caller.
pub fn decide(
    keys: &Keys,
    settings: &WorkloadSettings,
    source_name: &str,
    source_annotations: &BTreeMap<String, String>,
    auto_reload_all: bool,
) -> Decision {
    if source_annotations
        .get(&keys.ignore)
        .is_some_and(|v| v == "true")
    {
        return Decision::Skip;
    }
    if settings.exclude.iter().any(|n| n == source_name) {
        return Decision::Skip;
    }
    if settings.reload.iter().any(|re| re.is_match(source_name)) {
        return Decision::Named;
    }
    if settings.search
        && source_annotations
            .get(&keys.match_)
            .is_some_and(|v| v == "true")
    {
        return Decision::Auto;
    }
    let auto_empty = settings.auto.as_deref().unwrap_or("").is_empty()
        && settings.typed_auto.as_deref().unwrap_or("").is_empty();
    if go_true(settings.auto.as_ref())
        || go_true(settings.typed_auto.as_ref())
        || (auto_empty && auto_reload_all)
    {
        return Decision::Auto;
    }
    Decision::Skip
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn settings(meta: &[(&str, &str)], template: &[(&str, &str)]) -> WorkloadSettings {
        WorkloadSettings::read(
            &Keys::default(),
            SourceKind::Secret,
            &map(meta),
            &map(template),
            "ns/w",
        )
    }

    fn d(s: &WorkloadSettings, name: &str, source: &[(&str, &str)], all: bool) -> Decision {
        decide(&Keys::default(), s, name, &map(source), all)
    }

    #[test]
    fn decision_order_follows_upstream() {
        let auto = settings(&[("reloader.stakater.com/auto", "true")], &[]);
        assert_eq!(d(&auto, "db", &[], false), Decision::Auto);
        // ignore on the source wins over everything
        assert_eq!(
            d(
                &auto,
                "db",
                &[("reloader.stakater.com/ignore", "true")],
                false
            ),
            Decision::Skip
        );
        // typed auto of the other kind does not count for secrets
        let cm_auto = settings(&[("configmap.reloader.stakater.com/auto", "true")], &[]);
        assert_eq!(d(&cm_auto, "db", &[], false), Decision::Skip);
        let typed = settings(&[("secret.reloader.stakater.com/auto", "T")], &[]);
        assert_eq!(
            d(&typed, "db", &[], false),
            Decision::Auto,
            "ParseBool spellings"
        );
        // named: anchored regexes, trimmed; a partial match does not count
        let named = settings(
            &[("secret.reloader.stakater.com/reload", " db-.* , cache ")],
            &[],
        );
        assert_eq!(d(&named, "db-main", &[], false), Decision::Named);
        assert_eq!(d(&named, "cache", &[], false), Decision::Named);
        assert_eq!(d(&named, "my-cache", &[], false), Decision::Skip);
        // an invalid regex is skipped, the rest still work
        let broken = settings(&[("secret.reloader.stakater.com/reload", "([,db")], &[]);
        assert_eq!(d(&broken, "db", &[], false), Decision::Named);
        // exclude beats named
        let excluded = settings(
            &[
                ("secret.reloader.stakater.com/reload", "db"),
                ("secrets.exclude.reloader.stakater.com/reload", "db, other"),
            ],
            &[],
        );
        assert_eq!(d(&excluded, "db", &[], false), Decision::Skip);
        // search needs match on the source, exactly "true"
        let search = settings(&[("reloader.stakater.com/search", "true")], &[]);
        assert_eq!(d(&search, "db", &[], false), Decision::Skip);
        assert_eq!(
            d(
                &search,
                "db",
                &[("reloader.stakater.com/match", "true")],
                false
            ),
            Decision::Auto
        );
        assert_eq!(
            d(
                &search,
                "db",
                &[("reloader.stakater.com/match", "True")],
                false
            ),
            Decision::Skip
        );
    }

    #[test]
    fn auto_reload_all_and_the_explicit_opt_out() {
        let none = settings(&[], &[]);
        assert_eq!(d(&none, "db", &[], false), Decision::Skip);
        assert_eq!(d(&none, "db", &[], true), Decision::Auto);
        let opted_out = settings(&[("reloader.stakater.com/auto", "false")], &[]);
        assert_eq!(d(&opted_out, "db", &[], true), Decision::Skip);
        assert!(none.interested(true) && !none.interested(false));
        assert!(!opted_out.interested(true));
    }

    #[test]
    fn the_pod_template_is_read_only_when_metadata_has_none_of_the_four_keys() {
        let from_template = settings(&[], &[("reloader.stakater.com/auto", "true")]);
        assert_eq!(d(&from_template, "db", &[], false), Decision::Auto);
        // one of the four on metadata: the template is not read at all
        let metadata_wins = settings(
            &[("reloader.stakater.com/search", "false")],
            &[("reloader.stakater.com/auto", "true")],
        );
        assert_eq!(d(&metadata_wins, "db", &[], false), Decision::Skip);
        // exclude lists are read from metadata only
        let template_exclude = settings(
            &[("reloader.stakater.com/auto", "true")],
            &[("secrets.exclude.reloader.stakater.com/reload", "db")],
        );
        assert_eq!(d(&template_exclude, "db", &[], false), Decision::Auto);
    }

    #[test]
    fn renamed_keys_are_honoured() {
        let keys = Keys {
            auto: "example.com/auto".into(),
            ..Keys::default()
        };
        let s = WorkloadSettings::read(
            &keys,
            SourceKind::ConfigMap,
            &map(&[("example.com/auto", "true")]),
            &BTreeMap::new(),
            "ns/w",
        );
        assert_eq!(
            decide(&keys, &s, "cfg", &BTreeMap::new(), false),
            Decision::Auto
        );
    }
}
