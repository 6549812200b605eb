//! Flag parsing the way Go's `flag` package does it, for drop-in compatibility with upstream
//! command lines and Helm charts:
//! - a boolean flag is given bare (`--update-status`) or with `=` (`--update-status=false`),
//!   never with a separate value; the value is anything `strconv.ParseBool` takes;
//! - a flag given twice takes the last value (`#[command(args_override_self = true)]`).
//!
//! Declare a boolean flag with [`go_bool`] and these attributes:
//!
//! ```ignore
//! #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true,
//!       default_missing_value = "true", value_parser = go_bool, action = clap::ArgAction::Set)]
//! update_status: bool,
//! ```

/// Parses a boolean as Go's `strconv.ParseBool`: `1 t T TRUE true True` and
/// `0 f F FALSE false False`.
pub fn go_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        other => Err(format!(
            "invalid boolean value {other:?} (use true or false)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_parse_bool_spellings() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(go_bool(t), Ok(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(go_bool(f), Ok(false), "{f}");
        }
        for bad in ["yes", "", "tRuE", "2"] {
            assert!(go_bool(bad).is_err(), "{bad}");
        }
    }
}
