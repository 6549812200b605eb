//! Sprig's date functions. A time travels between functions as the text Go's `time.Time`
//! prints (`2006-01-02 15:04:05.999999999 -0700 MST`), so `{{ now }}` reads as in Go and every
//! date function accepts it, RFC 3339 text, or Unix seconds. Layouts are Go's reference-time
//! layouts (`"2006-01-02"`). Zones: `UTC` and `Local` (the controller's, UTC in the image).

use chrono::{DateTime, FixedOffset, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};
use gtmpl_ng::{Func, FuncError, Value};

use super::args::{arg, failed, text};

/// The functions of this module.
pub(super) const FUNCTIONS: &[(&str, Func)] = &[
    ("now", now as Func),
    ("date", date as Func),
    ("dateInZone", date_in_zone as Func),
    ("date_in_zone", date_in_zone as Func),
    ("htmlDate", html_date as Func),
    ("htmlDateInZone", html_date_in_zone as Func),
    ("toDate", to_date as Func),
    ("mustToDate", must_to_date as Func),
    ("unixEpoch", unix_epoch as Func),
    ("dateModify", date_modify as Func),
    ("date_modify", date_modify as Func),
    ("mustDateModify", must_date_modify as Func),
    ("must_date_modify", must_date_modify as Func),
    ("ago", ago as Func),
    ("duration", duration as Func),
    ("durationRound", duration_round as Func),
];

/// How Go prints a `time.Time`.
const GO_TIME_STRING: &str = "%Y-%m-%d %H:%M:%S%.f %z";

/// Prints a time as Go's `time.Time.String()` does (without the monotonic clock reading).
fn show(t: DateTime<FixedOffset>) -> Value {
    let zone = if t.offset().local_minus_utc() == 0 {
        "UTC".to_string()
    } else {
        t.format("%z").to_string()
    };
    Value::String(format!("{} {zone}", t.format(GO_TIME_STRING)))
}

/// Reads a time argument: Go's printed form, RFC 3339, or Unix seconds.
fn read_time(v: &Value, function: &str) -> Result<DateTime<FixedOffset>, FuncError> {
    if let Value::Number(n) = v {
        let secs = n
            .as_i64()
            .ok_or_else(|| failed(function, "not a Unix time"))?;
        return Utc
            .timestamp_opt(secs, 0)
            .single()
            .map(|t| t.fixed_offset())
            .ok_or_else(|| failed(function, "Unix time out of range"));
    }
    let s = text(v);
    let trimmed = s.trim();
    // Go's form ends with a zone name after the offset ("UTC", "CET", or the offset again for
    // a zone without a name): drop it
    let without_zone = match trimmed.rsplit_once(' ') {
        Some((head, zone))
            if head.contains(' ')
                && (zone.chars().all(|c| c.is_ascii_alphabetic())
                    || zone.starts_with(['+', '-'])) =>
        {
            head
        }
        _ => trimmed,
    };
    DateTime::parse_from_str(without_zone, GO_TIME_STRING)
        .or_else(|_| DateTime::parse_from_rfc3339(trimmed))
        .or_else(|_| {
            trimmed
                .parse::<i64>()
                .ok()
                .and_then(|secs| Utc.timestamp_opt(secs, 0).single())
                .map(|t| t.fixed_offset())
                .ok_or(())
        })
        .map_err(|_| failed(function, format!("cannot read {trimmed:?} as a time")))
}

fn in_zone(
    t: DateTime<FixedOffset>,
    zone: &str,
    function: &str,
) -> Result<DateTime<FixedOffset>, FuncError> {
    match zone {
        "" | "UTC" => Ok(t.with_timezone(&Utc).fixed_offset()),
        "Local" => Ok(t.with_timezone(&Local).fixed_offset()),
        other => Err(failed(
            function,
            format!("unknown time zone {other:?} (UTC and Local are available)"),
        )),
    }
}

/// Converts a Go reference-time layout into a chrono format string.
fn layout(go: &str) -> String {
    // longest tokens first, so "2006" wins over "2" and "January" over "Jan"
    const TOKENS: &[(&str, &str)] = &[
        ("January", "%B"),
        ("Monday", "%A"),
        ("-07:00:00", "%::z"),
        ("Z07:00", "%:z"),
        ("-07:00", "%:z"),
        ("-0700", "%z"),
        (".000000000", "%.9f"),
        (".000000", "%.6f"),
        (".000", "%.3f"),
        (".999999999", "%.f"),
        (".999999", "%.f"),
        (".999", "%.f"),
        ("2006", "%Y"),
        ("Jan", "%b"),
        ("Mon", "%a"),
        ("MST", "%Z"),
        ("002", "%j"),
        ("_2", "%e"),
        ("01", "%m"),
        ("02", "%d"),
        ("03", "%I"),
        ("04", "%M"),
        ("05", "%S"),
        ("06", "%y"),
        ("15", "%H"),
        ("PM", "%p"),
        ("pm", "%P"),
        ("-07", "%z"),
        ("1", "%-m"),
        ("2", "%-d"),
        ("3", "%-I"),
        ("4", "%-M"),
        ("5", "%-S"),
    ];
    let mut out = String::new();
    let mut rest = go;
    'outer: while !rest.is_empty() {
        for (token, fmt) in TOKENS {
            if let Some(after) = rest.strip_prefix(token) {
                out.push_str(fmt);
                rest = after;
                continue 'outer;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            if c == '%' {
                out.push_str("%%");
            } else {
                out.push(c);
            }
        }
        rest = chars.as_str();
    }
    out
}

fn format_in(fmt: &Value, t: &Value, zone: &str, function: &str) -> Result<Value, FuncError> {
    let t = in_zone(read_time(t, function)?, zone, function)?;
    Ok(Value::String(t.format(&layout(&text(fmt))).to_string()))
}

/// `now`: the current time.
fn now(_: &[Value]) -> Result<Value, FuncError> {
    Ok(show(Utc::now().fixed_offset()))
}

/// `date LAYOUT TIME`: the time formatted with a Go layout, in the controller's zone.
fn date(args: &[Value]) -> Result<Value, FuncError> {
    format_in(
        arg(args, 0, "date", 2)?,
        arg(args, 1, "date", 2)?,
        "Local",
        "date",
    )
}

/// `dateInZone LAYOUT TIME ZONE`.
fn date_in_zone(args: &[Value]) -> Result<Value, FuncError> {
    let zone = text(arg(args, 2, "dateInZone", 3)?);
    format_in(
        arg(args, 0, "dateInZone", 3)?,
        arg(args, 1, "dateInZone", 3)?,
        &zone,
        "dateInZone",
    )
}

/// `htmlDate TIME`: `2006-01-02`.
fn html_date(args: &[Value]) -> Result<Value, FuncError> {
    format_in(
        &Value::String("2006-01-02".into()),
        arg(args, 0, "htmlDate", 1)?,
        "Local",
        "htmlDate",
    )
}

/// `htmlDateInZone TIME ZONE`.
fn html_date_in_zone(args: &[Value]) -> Result<Value, FuncError> {
    let zone = text(arg(args, 1, "htmlDateInZone", 2)?);
    format_in(
        &Value::String("2006-01-02".into()),
        arg(args, 0, "htmlDateInZone", 2)?,
        &zone,
        "htmlDateInZone",
    )
}

fn parse_layout(args: &[Value], function: &str) -> Result<DateTime<FixedOffset>, FuncError> {
    let fmt = layout(&text(arg(args, 0, function, 2)?));
    let s = text(arg(args, 1, function, 2)?);
    DateTime::parse_from_str(&s, &fmt)
        .or_else(|_| {
            NaiveDateTime::parse_from_str(&s, &fmt)
                .map(|t| Local.from_local_datetime(&t).single())
                .ok()
                .flatten()
                .map(|t| t.fixed_offset())
                .ok_or(())
        })
        .or_else(|_| {
            NaiveDate::parse_from_str(&s, &fmt)
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .and_then(|t| Local.from_local_datetime(&t).single())
                .map(|t| t.fixed_offset())
                .ok_or(())
        })
        .map_err(|_| failed(function, format!("cannot parse {s:?} with that layout")))
}

/// `mustToDate LAYOUT TEXT`: the parsed time, or an error.
fn must_to_date(args: &[Value]) -> Result<Value, FuncError> {
    parse_layout(args, "mustToDate").map(show)
}

/// `toDate LAYOUT TEXT`: the parsed time, or Go's zero time when it does not parse.
fn to_date(args: &[Value]) -> Result<Value, FuncError> {
    Ok(parse_layout(args, "toDate")
        .map(show)
        .unwrap_or_else(|_| Value::String("0001-01-01 00:00:00 +0000 UTC".into())))
}

/// `unixEpoch TIME`: seconds since 1970 as text.
fn unix_epoch(args: &[Value]) -> Result<Value, FuncError> {
    let t = read_time(arg(args, 0, "unixEpoch", 1)?, "unixEpoch")?;
    Ok(Value::String(t.timestamp().to_string()))
}

/// Nanoseconds per unit of a Go duration.
fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Go's `time.ParseDuration`: nanoseconds, or `None` where Go returns an error (including a
/// duration beyond ±2562047h, which Go refuses rather than wrapping).
pub(super) fn go_duration_nanos(text: &str) -> Option<i64> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let int_len = digits(rest);
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(f) => f.split_at(digits(f)),
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, tail) = after.split_at(unit_len);
        let unit = unit_nanos(unit)?;
        let mut v: u64 = 0;
        for d in int_part.bytes() {
            v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        v = v.checked_mul(unit)?;
        if v > 1 << 63 {
            return None;
        }
        // the fraction, to the precision Go keeps (it stops reading digits on overflow)
        let mut f: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut overflowed = false;
        for d in frac_part.bytes() {
            if overflowed {
                continue;
            }
            match f
                .checked_mul(10)
                .and_then(|x| x.checked_add(u64::from(d - b'0')))
            {
                Some(x) if x <= 1 << 63 => {
                    f = x;
                    scale *= 10.0;
                }
                _ => overflowed = true,
            }
        }
        if f > 0 {
            v = v.checked_add((f as f64 * (unit as f64 / scale)) as u64)?;
            if v > 1 << 63 {
                return None;
            }
        }
        total = total.checked_add(v)?;
        if total > 1 << 63 {
            return None;
        }
        rest = tail;
    }
    if negative {
        Some(0i64.checked_sub_unsigned(total)?)
    } else {
        i64::try_from(total).ok()
    }
}

/// A signed Go duration ("-1.5h", "+30m").
fn signed_duration(text: &str, function: &str) -> Result<chrono::Duration, FuncError> {
    go_duration_nanos(text)
        .map(chrono::Duration::nanoseconds)
        .ok_or_else(|| failed(function, format!("time: invalid duration {text:?}")))
}

/// `mustDateModify "-1.5h" TIME`.
fn must_date_modify(args: &[Value]) -> Result<Value, FuncError> {
    let by = signed_duration(&text(arg(args, 0, "dateModify", 2)?), "dateModify")?;
    let t = read_time(arg(args, 1, "dateModify", 2)?, "dateModify")?;
    t.checked_add_signed(by)
        .map(show)
        .ok_or_else(|| failed("dateModify", "the time is out of range"))
}

/// `dateModify "-1.5h" TIME`: the time unchanged when the duration does not parse.
fn date_modify(args: &[Value]) -> Result<Value, FuncError> {
    must_date_modify(args).or_else(|_| {
        let t = read_time(arg(args, 1, "dateModify", 2)?, "dateModify")?;
        Ok(show(t))
    })
}

/// Go's `time.Duration.String()` of a number of nanoseconds ("1h2m3.5s", "1.5ms", "0s").
pub(super) fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    // the fraction of `v` below 10^prec, without trailing zeros
    let frac = |v: u64, prec: u32| -> String {
        let digits = format!("{:0width$}", v % 10u64.pow(prec), width = prec as usize);
        let digits = digits.trim_end_matches('0');
        if digits.is_empty() {
            String::new()
        } else {
            format!(".{digits}")
        }
    };
    if u < 1_000_000_000 {
        let (prec, unit) = match u {
            u if u < 1_000 => (0, "ns"),
            u if u < 1_000_000 => (3, "\u{b5}s"),
            _ => (6, "ms"),
        };
        let whole = u / 10u64.pow(prec);
        return format!(
            "{sign}{whole}{}{unit}",
            if prec > 0 {
                frac(u, prec)
            } else {
                String::new()
            }
        );
    }
    let secs = u / 1_000_000_000;
    let fraction = frac(u, 9);
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{sign}{s}{fraction}s"),
        (0, _) => format!("{sign}{m}m{s}{fraction}s"),
        _ => format!("{sign}{h}h{m}m{s}{fraction}s"),
    }
}

/// `ago TIME`: how long ago, rounded to the second.
fn ago(args: &[Value]) -> Result<Value, FuncError> {
    let t = read_time(arg(args, 0, "ago", 1)?, "ago")?;
    let nanos = Utc::now()
        .fixed_offset()
        .signed_duration_since(t)
        .num_nanoseconds()
        .unwrap_or(i64::MAX);
    // Go's Duration.Round(time.Second): halves away from zero
    let second = 1_000_000_000i64;
    let rem = nanos % second;
    let rounded = if rem.abs() * 2 >= second {
        nanos - rem + second * rem.signum()
    } else {
        nanos - rem
    };
    Ok(Value::String(go_duration(rounded)))
}

/// `duration SECONDS`: sprig reads a string (base 10) or an `int64`; anything else, including
/// a template's integer constant (an `int`), counts as 0.
fn duration(args: &[Value]) -> Result<Value, FuncError> {
    super::go::exactly(args, "duration", 1)?;
    let secs: i64 = match &args[0] {
        Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    };
    Ok(Value::String(go_duration(secs.wrapping_mul(1_000_000_000))))
}

/// `durationRound D`: a Go duration string, or the time since a time, as one rounded-down unit:
/// `2y`, `3mo`, `4d`, `5h`, `6m`, `7s`, else `0s`. Other values (numbers among them) count as 0.
fn duration_round(args: &[Value]) -> Result<Value, FuncError> {
    super::go::exactly(args, "durationRound", 1)?;
    let nanos: i64 = match &args[0] {
        Value::String(t) => match go_duration_nanos(t) {
            Some(d) => d,
            None => match read_time(&args[0], "durationRound") {
                Ok(then) if looks_like_go_time(t) => Utc::now()
                    .fixed_offset()
                    .signed_duration_since(then)
                    .num_nanoseconds()
                    .unwrap_or(i64::MAX),
                _ => 0,
            },
        },
        _ => 0,
    };
    let u = u128::from(nanos.unsigned_abs());
    const SECOND: u128 = 1_000_000_000;
    const UNITS: [(u128, &str); 6] = [
        (365 * 24 * 3600 * SECOND, "y"),
        (30 * 24 * 3600 * SECOND, "mo"),
        (24 * 3600 * SECOND, "d"),
        (3600 * SECOND, "h"),
        (60 * SECOND, "m"),
        (SECOND, "s"),
    ];
    let out = UNITS
        .iter()
        .find(|(size, _)| u > *size)
        .map(|(size, unit)| format!("{}{unit}", u / size))
        .unwrap_or_else(|| "0s".to_string());
    Ok(Value::String(out))
}

/// Whether text is a time as this module passes times around (Go's `time.Time.String()`).
fn looks_like_go_time(t: &str) -> bool {
    t.len() >= 25 && t.as_bytes().get(4) == Some(&b'-') && t.as_bytes().get(10) == Some(&b' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    fn out(v: Result<Value, FuncError>) -> String {
        text(&v.unwrap())
    }

    #[test]
    fn go_layouts_translate() {
        assert_eq!(layout("2006-01-02"), "%Y-%m-%d");
        assert_eq!(
            layout("Jan 2, 2006 at 3:04pm (MST)"),
            "%b %-d, %Y at %-I:%M%P (%Z)"
        );
        // as in Go, digits are layout elements: only the % needs escaping for chrono
        assert_eq!(layout("15:04:05.000 %"), "%H:%M:%S%.3f %%");
    }

    #[test]
    fn dates_parse_format_and_shift_like_sprig() {
        // toDate reads in the controller's zone, as sprig does
        let t = out(to_date(&[s("2006-01-02"), s("2017-12-31")]));
        assert_eq!(out(date(&[s("02/01/2006"), s(&t)])), "31/12/2017");
        let local_midnight = Local
            .with_ymd_and_hms(2017, 12, 31, 0, 0, 0)
            .unwrap()
            .timestamp();
        assert_eq!(out(unix_epoch(&[s(&t)])), local_midnight.to_string());
        assert_eq!(
            out(html_date_in_zone(&[Value::from(0), s("UTC")])),
            "1970-01-01"
        );
        let utc = "2017-12-31T00:00:00Z";
        assert_eq!(out(unix_epoch(&[s(utc)])), "1514678400");
        let later = out(date_modify(&[s("-1.5h"), s(utc)]));
        assert_eq!(later, "2017-12-30 22:30:00 +0000 UTC");
        assert_eq!(
            out(date_in_zone(&[
                s("2006-01-02T15:04:05Z07:00"),
                s(&later),
                s("UTC")
            ])),
            "2017-12-30T22:30:00+00:00"
        );
        assert!(date_in_zone(&[s("2006"), s(&t), s("Mars/Olympus")]).is_err());
        assert_eq!(
            out(to_date(&[s("2006-01-02"), s("not a date")])),
            "0001-01-01 00:00:00 +0000 UTC"
        );
        assert!(must_to_date(&[s("2006-01-02"), s("not a date")]).is_err());
        // now prints as Go prints a time, and every function reads it back
        let n = out(now(&[]));
        assert!(n.ends_with(" +0000 UTC"), "{n}");
        assert!(unix_epoch(&[s(&n)]).is_ok());
        assert_eq!(out(ago(&[s(&n)])), "0s");
    }

    #[test]
    fn durations_print_as_go() {
        assert_eq!(out(duration(&[s("95")])), "1m35s");
        assert_eq!(out(duration(&[s("3600")])), "1h0m0s");
        // sprig reads only strings and int64s: a template's integer constant is an int
        assert_eq!(out(duration(&[Value::from(95)])), "0s");
        assert_eq!(go_duration(-5_000_000_000), "-5s");
        assert_eq!(go_duration(1_500_000), "1.5ms");
        assert_eq!(go_duration(3_723_500_000_000), "1h2m3.5s");
        assert_eq!(out(duration_round(&[s("2h10m")])), "2h");
        assert_eq!(out(duration_round(&[s("-49h")])), "2d");
        assert_eq!(out(duration_round(&[Value::from(1_000)])), "0s");
    }
}
