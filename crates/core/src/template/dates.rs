//! Sprig's date functions. A time travels between functions as the text Go's `time.Time`
//! prints (`2006-01-02 15:04:05.999999999 -0700 MST`), so `{{ now }}` reads as in Go and every
//! date function takes it back. Layouts are Go's reference-time layouts, zones are read from the
//! system's zoneinfo files as Go reads them, "Local" is the controller's zone ($TZ, else
//! /etc/localtime, else UTC), and an unknown zone falls back to UTC as sprig's does.

use super::gotmpl::{Func, FuncError, Typed, Value};
use chrono::{Datelike, Timelike, Utc};

use super::go::{Num, exactly, num, str_param, type_name};
use super::gotime::{GoTime, Zone, format, load_zone, local_zone, parse};

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

fn failed(function: &str, what: impl std::fmt::Display) -> FuncError {
    FuncError::Generic(format!("{function}: {what}"))
}

fn show(t: &GoTime) -> Value {
    Typed::value("time.Time", "struct", t.show())
}

/// A time argument, if the value is a `time.Time`.
fn as_time(v: &Value) -> Option<GoTime> {
    GoTime::read(Typed::is(v, "time.Time")?)
}

/// Go's English names of months and weekdays.
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The methods of Go's `time.Time` a template can call: the calendar fields (`Year`, `Month`,
/// `Day`, `Hour`, `Minute`, `Second`, `Nanosecond`, `YearDay`, `Weekday`), `Unix`,
/// `UnixMilli`, `UnixNano`, `Format LAYOUT`, `UTC`, `Local`, `IsZero`, `String`, and `Before`,
/// `After`, `Equal` with another time. `None` when the value is no time or has no such method.
pub(super) fn method(recv: &Value, name: &str, args: &[Value]) -> Option<Result<Value, FuncError>> {
    let t = as_time(recv)?;
    let want = |n: usize| -> Result<(), FuncError> {
        if args.len() == n {
            Ok(())
        } else {
            Err(FuncError::Generic(format!(
                "wrong number of args for {name}: want {n} got {}",
                args.len()
            )))
        }
    };
    let wall = t.wall();
    let int = |n: i64| want(0).map(|()| super::go::int(n));
    let result = match name {
        "Year" => int(i64::from(wall.year())),
        "Day" => int(i64::from(wall.day())),
        "Hour" => int(i64::from(wall.hour())),
        "Minute" => int(i64::from(wall.minute())),
        "Second" => int(i64::from(wall.second())),
        "Nanosecond" => int(i64::from(wall.nanosecond() % 1_000_000_000)),
        "YearDay" => int(i64::from(wall.ordinal())),
        "Month" => {
            want(0).map(|()| Typed::value("time.Month", "int", MONTHS[wall.month0() as usize]))
        }
        "Weekday" => want(0).map(|()| {
            Typed::value(
                "time.Weekday",
                "int",
                WEEKDAYS[wall.weekday().num_days_from_sunday() as usize],
            )
        }),
        "Unix" => want(0).map(|()| super::go::int64(t.unix())),
        "UnixMilli" => want(0).map(|()| super::go::int64(t.utc.and_utc().timestamp_millis())),
        "UnixNano" => {
            want(0).map(|()| super::go::int64(t.utc.and_utc().timestamp_nanos_opt().unwrap_or(0)))
        }
        "Format" => want(1)
            .and_then(|()| str_param(&args[0]))
            .map(|layout| Value::String(format(&t, &layout))),
        "UTC" => want(0).map(|()| show(&t.in_zone(&Zone::Utc))),
        "Local" => want(0).map(|()| show(&t.in_zone(&local_zone()))),
        "IsZero" => want(0).map(|()| Value::Bool(t.utc == GoTime::zero().utc)),
        "String" => want(0).map(|()| Value::String(t.show())),
        "Before" | "After" | "Equal" => want(1).and_then(|()| {
            let other = time_param(&args[0])?;
            Ok(Value::Bool(match name {
                "Before" => t.utc < other.utc,
                "After" => t.utc > other.utc,
                _ => t.utc == other.utc,
            }))
        }),
        _ => return None,
    };
    Some(result)
}

/// A value for a Go `time.Time` parameter.
fn time_param(v: &Value) -> Result<GoTime, FuncError> {
    as_time(v).ok_or_else(|| {
        FuncError::Generic(format!(
            "wrong type for value; expected time.Time; got {}",
            type_name(v)
        ))
    })
}

/// sprig's reading of a date argument: a time, Unix seconds, or else the current time.
fn time_or_now(v: &Value) -> GoTime {
    if let Some(t) = as_time(v) {
        return t;
    }
    if let Some(Num::Int(secs)) = num(v)
        && let Some(t) = GoTime::from_unix(secs, 0, &Zone::Utc)
    {
        return t;
    }
    GoTime::now()
}

fn zone_or_utc(name: &str) -> Zone {
    load_zone(name).unwrap_or(Zone::Utc)
}

fn format_in(layout: &str, v: &Value, zone: &str) -> Value {
    Value::String(format(&time_or_now(v).in_zone(&zone_or_utc(zone)), layout))
}

/// `now`: the current time.
fn now(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "now", 0)?;
    Ok(show(&GoTime::now()))
}

/// `date LAYOUT TIME`: the time formatted with a Go layout, in the controller's zone.
fn date(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "date", 2)?;
    Ok(format_in(&str_param(&args[0])?, &args[1], "Local"))
}

/// `dateInZone LAYOUT TIME ZONE`.
fn date_in_zone(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "dateInZone", 3)?;
    let zone = str_param(&args[2])?;
    Ok(format_in(&str_param(&args[0])?, &args[1], &zone))
}

/// `htmlDate TIME`: `2006-01-02`.
fn html_date(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "htmlDate", 1)?;
    Ok(format_in("2006-01-02", &args[0], "Local"))
}

/// `htmlDateInZone TIME ZONE`.
fn html_date_in_zone(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "htmlDateInZone", 2)?;
    let zone = str_param(&args[1])?;
    Ok(format_in("2006-01-02", &args[0], &zone))
}

fn parse_args(args: &[Value], function: &str) -> Result<Result<GoTime, String>, FuncError> {
    exactly(args, function, 2)?;
    let layout = str_param(&args[0])?;
    let text = str_param(&args[1])?;
    Ok(parse(&layout, &text, &local_zone()))
}

/// `mustToDate LAYOUT TEXT`: the parsed time, or an error.
fn must_to_date(args: &[Value]) -> Result<Value, FuncError> {
    parse_args(args, "mustToDate")?
        .map(|t| show(&t))
        .map_err(FuncError::Generic)
}

/// `toDate LAYOUT TEXT`: the parsed time, or Go's zero time when it does not parse.
fn to_date(args: &[Value]) -> Result<Value, FuncError> {
    Ok(show(
        &parse_args(args, "toDate")?.unwrap_or_else(|_| GoTime::zero()),
    ))
}

/// `unixEpoch TIME`: seconds since 1970 as text.
fn unix_epoch(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "unixEpoch", 1)?;
    Ok(Value::String(time_param(&args[0])?.unix().to_string()))
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

/// `mustDateModify "-1.5h" TIME`.
fn must_date_modify(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "mustDateModify", 2)?;
    let text = str_param(&args[0])?;
    let t = time_param(&args[1])?;
    let by = go_duration_nanos(&text).ok_or_else(|| {
        FuncError::Generic(
            "time: invalid duration (the value is not quoted: it may be secret)".to_string(),
        )
    })?;
    t.add_nanos(by)
        .map(|t| show(&t))
        .ok_or_else(|| failed("mustDateModify", "the time is out of range"))
}

/// `dateModify "-1.5h" TIME`: the time unchanged when the duration does not parse.
fn date_modify(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "dateModify", 2)?;
    let text = str_param(&args[0])?;
    let t = time_param(&args[1])?;
    Ok(show(
        &go_duration_nanos(&text)
            .and_then(|by| t.add_nanos(by))
            .unwrap_or(t),
    ))
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
    exactly(args, "ago", 1)?;
    let t = time_or_now(&args[0]);
    let nanos = Utc::now()
        .naive_utc()
        .signed_duration_since(t.utc)
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
            None => match GoTime::read(t) {
                Some(then) => Utc::now()
                    .naive_utc()
                    .signed_duration_since(then.utc)
                    .num_nanoseconds()
                    .unwrap_or(i64::MAX),
                None => 0,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    /// A time.Time value from its printed form.
    fn tm(v: &str) -> Value {
        show(&GoTime::read(v).unwrap())
    }

    fn out(v: Result<Value, FuncError>) -> String {
        match v.unwrap() {
            Value::String(s) => s,
            other => other.to_string(),
        }
    }

    #[test]
    fn dates_parse_format_and_shift_like_sprig() {
        let t = out(to_date(&[
            s("2006-01-02T15:04:05Z07:00"),
            s("2024-01-02T03:04:05Z"),
        ]));
        assert_eq!(t, "2024-01-02 03:04:05 +0000 UTC");
        assert_eq!(out(unix_epoch(&[tm(&t)])), "1704164645");
        assert_eq!(
            out(date_modify(&[s("-48h"), tm(&t)])),
            "2023-12-31 03:04:05 +0000 UTC"
        );
        assert_eq!(out(date_modify(&[s("bad"), tm(&t)])), t);
        assert!(must_date_modify(&[s("bad"), tm(&t)]).is_err());
        assert_eq!(
            out(to_date(&[s("2006-01-02"), s("not a date")])),
            "0001-01-01 00:00:00 +0000 UTC"
        );
        assert!(must_to_date(&[s("2006-01-02"), s("not a date")]).is_err());
        assert_eq!(
            out(date_in_zone(&[
                s("2006"),
                Value::from(0),
                s("Mars/Olympus")
            ])),
            "1970"
        );
        assert!(unix_epoch(&[s("2024-01-02")]).is_err());
        let n = out(now(&[]));
        assert!(unix_epoch(&[tm(&n)]).is_ok());
        assert_eq!(out(ago(&[tm(&n)])), "0s");
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
        assert_eq!(go_duration_nanos("2562048h"), None);
        assert_eq!(go_duration_nanos("-1.5h"), Some(-5_400_000_000_000));
    }
}
