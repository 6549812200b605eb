//! Writing a kind's `Ready` condition with the status fields that go with it, by server-side
//! apply, only when something changed, and never after the controller was told to stop.

use std::fmt::Debug;

use kube::Resource;
use kube::api::Api;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use strongroom_controller_kit::status::{self, DesiredCondition, Stamps};

use crate::context::Context;
use crate::error::Error;
use crate::{FIELD_MANAGER, READY};

/// The `Ready` condition and the status fields to write with it.
pub struct ReadyStatus<'a> {
    /// The object's current status.
    pub current: Value,
    /// Fields this manager applied before that stay as they are (server-side apply would
    /// remove a field the manager stops sending).
    pub kept: &'a [&'a str],
    /// Fields set now (they win over kept ones).
    pub set: Map<String, Value>,
    /// Whether the object is ready.
    pub ok: bool,
    /// The condition's reason, if the kind uses one.
    pub reason: Option<&'a str>,
    /// The condition's message.
    pub message: &'a str,
}

/// Applies `status` to object `name` through `api`, unless nothing changed or the controller
/// is stopping.
pub async fn write<K>(
    ctx: &Context,
    api: &Api<K>,
    name: &str,
    status: ReadyStatus<'_>,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    if ctx.policy.stop_token().is_cancelled() {
        return Ok(());
    }
    let mut extra = Map::new();
    for field in status.kept {
        if let Some(v) = status.current.get(*field).filter(|v| !v.is_null()) {
            extra.insert((*field).to_string(), v.clone());
        }
    }
    extra.extend(status.set);
    let mut condition = DesiredCondition::new(READY, status.ok).message(status.message);
    if let Some(reason) = status.reason {
        condition = condition.reason(reason);
    }
    let Some(next) = status::next_status(
        &status.current,
        &[condition],
        extra,
        &status::now(),
        Stamps::Transition,
    ) else {
        return Ok(());
    };
    status::apply_status(api, name, FIELD_MANAGER, next)
        .await
        .map_err(Error::kube("update the status"))
}
