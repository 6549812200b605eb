//! Go's `time.Time` as templates see it: its printed form (`2006-01-02 15:04:05.999999999 -0700
//! MST`, which is also how a time travels between template functions here), Go's reference-time
//! layouts for `Format` and `Parse`, and time zones read from the system's zoneinfo files as Go
//! reads them.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeDelta, Timelike, Utc};

/// A point in time with the zone it is shown in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GoTime {
    /// The instant, as UTC wall time.
    pub(super) utc: NaiveDateTime,
    /// Seconds east of UTC.
    pub(super) offset: i32,
    /// The zone's abbreviation ("UTC", "CET"); empty for a bare offset.
    pub(super) zone: String,
}

/// A time zone: UTC or a zoneinfo file's transitions.
#[derive(Debug, Clone)]
pub(super) enum Zone {
    /// UTC.
    Utc,
    /// Transitions (Unix time, type index) and types (offset, is DST, abbreviation).
    Rules(Vec<(i64, usize)>, Vec<(i32, bool, String)>),
}

impl Zone {
    /// The offset and abbreviation in force at a Unix time.
    pub(super) fn lookup(&self, unix: i64) -> (i32, String) {
        match self {
            Zone::Utc => (0, "UTC".into()),
            Zone::Rules(transitions, types) => {
                let first_standard = types
                    .iter()
                    .find(|t| !t.1)
                    .or_else(|| types.first())
                    .map(|t| (t.0, t.2.clone()))
                    .unwrap_or((0, "UTC".into()));
                match transitions.partition_point(|(at, _)| *at <= unix) {
                    0 => first_standard,
                    n => types
                        .get(transitions[n - 1].1)
                        .map(|t| (t.0, t.2.clone()))
                        .unwrap_or(first_standard),
                }
            }
        }
    }
}

fn be_u32(b: &[u8], at: usize) -> Option<usize> {
    let bytes: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    usize::try_from(u32::from_be_bytes(bytes)).ok()
}

/// Reads a TZif file (version 2 or later data where present).
fn parse_tzif(b: &[u8]) -> Option<Zone> {
    if b.get(..4)? != b"TZif" {
        return None;
    }
    let counts = |at: usize| -> Option<[usize; 6]> {
        Some([
            be_u32(b, at + 20)?,
            be_u32(b, at + 24)?,
            be_u32(b, at + 28)?,
            be_u32(b, at + 32)?,
            be_u32(b, at + 36)?,
            be_u32(b, at + 40)?,
        ])
    };
    let [isut, isstd, leap, time, typ, chars] = counts(0)?;
    let (mut at, width) = (44, 4);
    let v1_len = time * 4 + time + typ * 6 + chars + leap * 8 + isstd + isut;
    let (base, width) = if *b.get(4)? >= b'2' {
        at += v1_len;
        (at, 8)
    } else {
        (0, width)
    };
    let [_, _, _, time, typ, chars] = if width == 8 {
        counts(base)?
    } else {
        [isut, isstd, leap, time, typ, chars]
    };
    let mut p = if width == 8 { base + 44 } else { at };
    let mut transitions = Vec::with_capacity(time);
    for i in 0..time {
        let t = if width == 8 {
            i64::from_be_bytes(b.get(p + i * 8..p + i * 8 + 8)?.try_into().ok()?)
        } else {
            i64::from(i32::from_be_bytes(
                b.get(p + i * 4..p + i * 4 + 4)?.try_into().ok()?,
            ))
        };
        transitions.push(t);
    }
    p += time * width;
    let indices = b.get(p..p + time)?;
    p += time;
    let mut types = Vec::with_capacity(typ);
    let abbrevs = b.get(p + typ * 6..p + typ * 6 + chars)?;
    for i in 0..typ {
        let e = b.get(p + i * 6..p + i * 6 + 6)?;
        let offset = i32::from_be_bytes(e[..4].try_into().ok()?);
        let start = usize::from(e[5]);
        let name: Vec<u8> = abbrevs
            .get(start..)?
            .iter()
            .take_while(|c| **c != 0)
            .copied()
            .collect();
        types.push((
            offset,
            e[4] != 0,
            String::from_utf8_lossy(&name).into_owned(),
        ));
    }
    Some(Zone::Rules(
        transitions
            .into_iter()
            .zip(indices.iter().map(|i| usize::from(*i)))
            .collect(),
        types,
    ))
}

/// Go's `time.LoadLocation`: "" and "UTC" are UTC, "Local" the controller's zone, anything else
/// a file under the system's zoneinfo directory. `None` where Go returns an error.
pub(super) fn load_zone(name: &str) -> Option<Zone> {
    match name {
        "" | "UTC" => return Some(Zone::Utc),
        "Local" => return Some(local_zone()),
        _ => {}
    }
    if name.contains("..") || name.starts_with('/') || name.starts_with('\\') {
        return None;
    }
    let dirs = [
        "/usr/share/zoneinfo",
        "/usr/share/lib/zoneinfo",
        "/usr/lib/locale/TZ",
    ];
    dirs.iter()
        .find_map(|d| std::fs::read(format!("{d}/{name}")).ok())
        .and_then(|b| parse_tzif(&b))
}

/// The controller's zone as Go finds it: `$TZ`, else `/etc/localtime`, else UTC.
pub(super) fn local_zone() -> Zone {
    match std::env::var("TZ") {
        Ok(tz) if tz.is_empty() || tz == "UTC" => Zone::Utc,
        Ok(tz) => load_zone(tz.trim_start_matches(':')).unwrap_or(Zone::Utc),
        Err(_) => std::fs::read("/etc/localtime")
            .ok()
            .and_then(|b| parse_tzif(&b))
            .unwrap_or(Zone::Utc),
    }
}

impl GoTime {
    /// A Unix time (seconds and nanoseconds) in a zone.
    pub(super) fn from_unix(secs: i64, nanos: u32, zone: &Zone) -> Option<Self> {
        let utc = DateTime::<Utc>::from_timestamp(secs, nanos)?.naive_utc();
        let (offset, name) = zone.lookup(secs);
        Some(Self {
            utc,
            offset,
            zone: name,
        })
    }

    /// The current time in the controller's zone.
    pub(super) fn now() -> Self {
        let n = Utc::now();
        Self::from_unix(n.timestamp(), n.timestamp_subsec_nanos(), &local_zone()).unwrap_or(Self {
            utc: n.naive_utc(),
            offset: 0,
            zone: "UTC".into(),
        })
    }

    /// Go's zero time.
    pub(super) fn zero() -> Self {
        Self {
            utc: NaiveDate::from_ymd_opt(1, 1, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .unwrap_or_default(),
            offset: 0,
            zone: "UTC".into(),
        }
    }

    /// Seconds since 1970.
    pub(super) fn unix(&self) -> i64 {
        self.utc.and_utc().timestamp()
    }

    /// The same instant in another zone.
    pub(super) fn in_zone(&self, zone: &Zone) -> Self {
        let (offset, name) = zone.lookup(self.unix());
        Self {
            utc: self.utc,
            offset,
            zone: name,
        }
    }

    /// The wall-clock time in its zone.
    pub(super) fn wall(&self) -> NaiveDateTime {
        self.utc + TimeDelta::seconds(i64::from(self.offset))
    }

    /// This time moved by a number of nanoseconds, `None` out of range.
    pub(super) fn add_nanos(&self, nanos: i64) -> Option<Self> {
        Some(Self {
            utc: self.utc.checked_add_signed(TimeDelta::nanoseconds(nanos))?,
            ..self.clone()
        })
    }

    /// Go's `Time.String()`.
    pub(super) fn show(&self) -> String {
        format(self, "2006-01-02 15:04:05.999999999 -0700 MST")
    }

    /// Reads a time printed by [`GoTime::show`] (with or without Go's monotonic clock suffix).
    pub(super) fn read(text: &str) -> Option<Self> {
        let text = text.split(" m=").next().unwrap_or(text);
        let mut parts = text.split(' ');
        let (date, clock, offset, zone) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || offset.len() != 5 {
            return None;
        }
        let wall =
            NaiveDateTime::parse_from_str(&format!("{date} {clock}"), "%Y-%m-%d %H:%M:%S%.f")
                .ok()?;
        let sign = match offset.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let hh: i32 = offset.get(1..3)?.parse().ok()?;
        let mm: i32 = offset.get(3..5)?.parse().ok()?;
        let off = sign * (hh * 3600 + mm * 60);
        let zone = if zone == offset {
            String::new()
        } else {
            zone.to_string()
        };
        Some(Self {
            utc: wall - TimeDelta::seconds(i64::from(off)),
            offset: off,
            zone,
        })
    }
}

/// The elements of a Go layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    Pm,
    LowerPm,
    Tz,
    /// Numeric zone: "Z" for UTC when `z`, with colons when `colon`, with seconds when
    /// `seconds`, minutes unless `hours_only`.
    Offset {
        z: bool,
        colon: bool,
        seconds: bool,
        hours_only: bool,
    },
    /// Fractional seconds: separator, digits, trailing zeros trimmed when `trim`.
    Frac(char, usize, bool),
}

fn lower_start(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
}

/// The next layout element at the start of `s` and its length in bytes.
fn std_at(s: &str) -> Option<(Std, usize)> {
    let b = s.as_bytes();
    let offset = |z: bool, colon: bool, seconds: bool, hours_only: bool| Std::Offset {
        z,
        colon,
        seconds,
        hours_only,
    };
    Some(match b.first()? {
        b'J' if s.starts_with("January") => (Std::LongMonth, 7),
        b'J' if s.starts_with("Jan") && !lower_start(&s[3..]) => (Std::Month, 3),
        b'M' if s.starts_with("Monday") => (Std::LongWeekDay, 6),
        b'M' if s.starts_with("Mon") && !lower_start(&s[3..]) => (Std::WeekDay, 3),
        b'M' if s.starts_with("MST") => (Std::Tz, 3),
        b'0' if s.starts_with("002") => (Std::ZeroYearDay, 3),
        b'0' => match b.get(1)? {
            b'1' => (Std::ZeroMonth, 2),
            b'2' => (Std::ZeroDay, 2),
            b'3' => (Std::ZeroHour12, 2),
            b'4' => (Std::ZeroMinute, 2),
            b'5' => (Std::ZeroSecond, 2),
            b'6' => (Std::Year, 2),
            _ => return None,
        },
        b'1' if s.starts_with("15") => (Std::Hour, 2),
        b'1' => (Std::NumMonth, 1),
        b'2' if s.starts_with("2006") => (Std::LongYear, 4),
        b'2' => (Std::Day, 1),
        b'_' if s.starts_with("_2") && !s.starts_with("_2006") => (Std::UnderDay, 2),
        b'_' if s.starts_with("__2") => (Std::UnderYearDay, 3),
        b'3' => (Std::Hour12, 1),
        b'4' => (Std::Minute, 1),
        b'5' => (Std::Second, 1),
        b'P' if s.starts_with("PM") => (Std::Pm, 2),
        b'p' if s.starts_with("pm") => (Std::LowerPm, 2),
        b'-' if s.starts_with("-070000") => (offset(false, false, true, false), 7),
        b'-' if s.starts_with("-07:00:00") => (offset(false, true, true, false), 9),
        b'-' if s.starts_with("-0700") => (offset(false, false, false, false), 5),
        b'-' if s.starts_with("-07:00") => (offset(false, true, false, false), 6),
        b'-' if s.starts_with("-07") => (offset(false, false, false, true), 3),
        b'Z' if s.starts_with("Z070000") => (offset(true, false, true, false), 7),
        b'Z' if s.starts_with("Z07:00:00") => (offset(true, true, true, false), 9),
        b'Z' if s.starts_with("Z0700") => (offset(true, false, false, false), 5),
        b'Z' if s.starts_with("Z07:00") => (offset(true, true, false, false), 6),
        b'Z' if s.starts_with("Z07") => (offset(true, false, false, true), 3),
        sep @ (b'.' | b',') if matches!(b.get(1), Some(b'0' | b'9')) => {
            let digit = b[1];
            let n = b[1..].iter().take_while(|c| **c == digit).count();
            if b.get(1 + n).is_some_and(u8::is_ascii_digit) {
                return None;
            }
            (Std::Frac(char::from(*sep), n, digit == b'9'), 1 + n)
        }
        _ => return None,
    })
}

const LONG_MONTHS: [&str; 12] = [
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
const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Go's `Time.Format`.
pub(super) fn format(t: &GoTime, layout: &str) -> String {
    let w = t.wall();
    let mut out = String::new();
    let mut rest = layout;
    while !rest.is_empty() {
        let Some((std, len)) = std_at(rest) else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        };
        rest = &rest[len..];
        let month = w.month0() as usize;
        let weekday = w.weekday().num_days_from_sunday() as usize;
        let hour12 = match w.hour() % 12 {
            0 => 12,
            h => h,
        };
        match std {
            Std::LongMonth => out.push_str(LONG_MONTHS[month]),
            Std::Month => out.push_str(&LONG_MONTHS[month][..3]),
            Std::NumMonth => out.push_str(&w.month().to_string()),
            Std::ZeroMonth => out.push_str(&format!("{:02}", w.month())),
            Std::LongWeekDay => out.push_str(LONG_DAYS[weekday]),
            Std::WeekDay => out.push_str(&LONG_DAYS[weekday][..3]),
            Std::Day => out.push_str(&w.day().to_string()),
            Std::UnderDay => out.push_str(&format!("{:>2}", w.day())),
            Std::ZeroDay => out.push_str(&format!("{:02}", w.day())),
            Std::UnderYearDay => out.push_str(&format!("{:>3}", w.ordinal())),
            Std::ZeroYearDay => out.push_str(&format!("{:03}", w.ordinal())),
            Std::Hour => out.push_str(&format!("{:02}", w.hour())),
            Std::Hour12 => out.push_str(&hour12.to_string()),
            Std::ZeroHour12 => out.push_str(&format!("{hour12:02}")),
            Std::Minute => out.push_str(&w.minute().to_string()),
            Std::ZeroMinute => out.push_str(&format!("{:02}", w.minute())),
            Std::Second => out.push_str(&w.second().to_string()),
            Std::ZeroSecond => out.push_str(&format!("{:02}", w.second())),
            Std::LongYear => {
                let y = w.year();
                if y < 0 {
                    out.push_str(&format!("-{:04}", -y));
                } else {
                    out.push_str(&format!("{y:04}"));
                }
            }
            Std::Year => out.push_str(&format!("{:02}", w.year().rem_euclid(100))),
            Std::Pm => out.push_str(if w.hour() >= 12 { "PM" } else { "AM" }),
            Std::LowerPm => out.push_str(if w.hour() >= 12 { "pm" } else { "am" }),
            Std::Tz => {
                if t.zone.is_empty() {
                    let zone = t.offset / 60;
                    let sign = if zone < 0 { '-' } else { '+' };
                    let z = zone.abs();
                    out.push_str(&format!("{sign}{:02}{:02}", z / 60, z % 60));
                } else {
                    out.push_str(&t.zone);
                }
            }
            Std::Offset {
                z,
                colon,
                seconds,
                hours_only,
            } => {
                if z && t.offset == 0 {
                    out.push('Z');
                    continue;
                }
                let zone = t.offset / 60;
                let abs_offset = t.offset.abs();
                let sign = if zone < 0 || t.offset < 0 { '-' } else { '+' };
                let z = zone.abs();
                out.push_str(&format!("{sign}{:02}", z / 60));
                if !hours_only {
                    if colon {
                        out.push(':');
                    }
                    out.push_str(&format!("{:02}", z % 60));
                }
                if seconds {
                    if colon {
                        out.push(':');
                    }
                    out.push_str(&format!("{:02}", abs_offset % 60));
                }
            }
            Std::Frac(sep, n, trim) => {
                let digits = format!("{:09}", w.nanosecond() % 1_000_000_000);
                let digits = &digits[..n.min(9)];
                let digits = if trim {
                    digits.trim_end_matches('0')
                } else {
                    digits
                };
                if !(trim && digits.is_empty()) {
                    out.push(sep);
                    out.push_str(digits);
                    if n > 9 && !trim {
                        out.push_str(&"0".repeat(n - 9));
                    }
                }
            }
        }
    }
    out
}

/// Reads up to `max` digits (at least `min`).
fn digits(value: &str, min: usize, max: usize) -> Option<(i64, &str)> {
    let n = value
        .bytes()
        .take(max)
        .take_while(u8::is_ascii_digit)
        .count();
    if n < min {
        return None;
    }
    Some((value[..n].parse().ok()?, &value[n..]))
}

fn name_prefix<'a>(value: &'a str, names: &[&str], len: Option<usize>) -> Option<(usize, &'a str)> {
    names.iter().enumerate().find_map(|(i, n)| {
        let n = len.map_or(*n, |l| &n[..l]);
        let head = value.get(..n.len())?;
        head.eq_ignore_ascii_case(n).then(|| (i, &value[n.len()..]))
    })
}

/// Go's `time.ParseInLocation(layout, value, local)`, for the layouts templates use.
pub(super) fn parse(layout: &str, value: &str, local: &Zone) -> Result<GoTime, String> {
    // the value is never quoted (it may come from a secret item); the layout is the template's
    let fail = || format!("parsing time as {layout:?}: cannot parse the value");
    let (mut year, mut month, mut day, mut yday) = (0i64, 1i64, 1i64, -1i64);
    let (mut hour, mut min, mut sec, mut nanos) = (0i64, 0i64, 0i64, 0i64);
    let mut pm: Option<bool> = None;
    let mut offset: Option<i32> = None;
    let mut zone_name: Option<String> = None;
    let (mut l, mut v) = (layout, value);
    while !l.is_empty() {
        let Some((std, len)) = std_at(l) else {
            let c = l.chars().next().unwrap_or(' ');
            v = v.strip_prefix(c).ok_or_else(fail)?;
            l = &l[c.len_utf8()..];
            continue;
        };
        l = &l[len..];
        let month_names: Vec<&str> = LONG_MONTHS.to_vec();
        let day_names: Vec<&str> = LONG_DAYS.to_vec();
        match std {
            Std::LongYear => {
                let (y, r) = digits(v, 4, 4).ok_or_else(fail)?;
                year = y;
                v = r;
            }
            Std::Year => {
                let (y, r) = digits(v, 2, 2).ok_or_else(fail)?;
                year = if y >= 69 { y + 1900 } else { y + 2000 };
                v = r;
            }
            Std::LongMonth => {
                let (m, r) = name_prefix(v, &month_names, None).ok_or_else(fail)?;
                month = m as i64 + 1;
                v = r;
            }
            Std::Month => {
                let (m, r) = name_prefix(v, &month_names, Some(3)).ok_or_else(fail)?;
                month = m as i64 + 1;
                v = r;
            }
            Std::NumMonth | Std::ZeroMonth => {
                let min_digits = if std == Std::ZeroMonth { 2 } else { 1 };
                let (m, r) = digits(v, min_digits, 2).ok_or_else(fail)?;
                month = m;
                v = r;
            }
            Std::LongWeekDay => {
                v = name_prefix(v, &day_names, None).ok_or_else(fail)?.1;
            }
            Std::WeekDay => {
                v = name_prefix(v, &day_names, Some(3)).ok_or_else(fail)?.1;
            }
            Std::Day | Std::UnderDay | Std::ZeroDay => {
                if std == Std::UnderDay {
                    v = v.strip_prefix(' ').unwrap_or(v);
                }
                let min_digits = if std == Std::ZeroDay { 2 } else { 1 };
                let (d, r) = digits(v, min_digits, 2).ok_or_else(fail)?;
                day = d;
                v = r;
            }
            Std::UnderYearDay | Std::ZeroYearDay => {
                let v2 = v.trim_start_matches(' ');
                let (d, r) = digits(v2, 3, 3).ok_or_else(fail)?;
                yday = d;
                v = r;
            }
            Std::Hour => {
                let (h, r) = digits(v, 2, 2).ok_or_else(fail)?;
                hour = h;
                v = r;
            }
            Std::Hour12 | Std::ZeroHour12 => {
                let min_digits = if std == Std::ZeroHour12 { 2 } else { 1 };
                let (h, r) = digits(v, min_digits, 2).ok_or_else(fail)?;
                if h > 12 {
                    return Err(fail());
                }
                hour = h;
                v = r;
            }
            Std::Minute | Std::ZeroMinute => {
                let min_digits = if std == Std::ZeroMinute { 2 } else { 1 };
                let (m, r) = digits(v, min_digits, 2).ok_or_else(fail)?;
                min = m;
                v = r;
            }
            Std::Second | Std::ZeroSecond => {
                let min_digits = if std == Std::ZeroSecond { 2 } else { 1 };
                let (s, r) = digits(v, min_digits, 2).ok_or_else(fail)?;
                sec = s;
                v = r;
                // a fraction the layout does not name is still read
                if let Some(f) = v.strip_prefix(['.', ','])
                    && !matches!(std_at(l), Some((Std::Frac(..), _)))
                    && f.starts_with(|c: char| c.is_ascii_digit())
                {
                    let n = f.bytes().take_while(u8::is_ascii_digit).count();
                    nanos = frac_nanos(&f[..n]);
                    v = &f[n..];
                }
            }
            Std::Frac(_, n, trim) => {
                if trim {
                    if let Some(f) = v.strip_prefix(['.', ',']) {
                        let k = f.bytes().take_while(u8::is_ascii_digit).count();
                        nanos = frac_nanos(&f[..k]);
                        v = &f[k..];
                    }
                } else {
                    let f = v.strip_prefix(['.', ',']).ok_or_else(fail)?;
                    let digits_part = f.get(..n).ok_or_else(fail)?;
                    if !digits_part.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(fail());
                    }
                    nanos = frac_nanos(digits_part);
                    v = &f[n..];
                }
            }
            Std::Pm | Std::LowerPm => {
                let head = v.get(..2).ok_or_else(fail)?;
                pm = Some(match head.to_ascii_uppercase().as_str() {
                    "PM" => true,
                    "AM" => false,
                    _ => return Err(fail()),
                });
                v = &v[2..];
            }
            Std::Offset {
                z,
                colon,
                seconds,
                hours_only,
            } => {
                if z && v.starts_with('Z') {
                    v = &v[1..];
                    offset = Some(0);
                    zone_name = Some("UTC".into());
                    continue;
                }
                let sign = match v.as_bytes().first() {
                    Some(b'+') => 1,
                    Some(b'-') => -1,
                    _ => return Err(fail()),
                };
                let (hh, mut r) = digits(&v[1..], 2, 2).ok_or_else(fail)?;
                let mut mm = 0;
                let mut ss = 0;
                if !hours_only {
                    if colon {
                        r = r.strip_prefix(':').ok_or_else(fail)?;
                    }
                    let (m, r2) = digits(r, 2, 2).ok_or_else(fail)?;
                    mm = m;
                    r = r2;
                }
                if seconds {
                    if colon {
                        r = r.strip_prefix(':').ok_or_else(fail)?;
                    }
                    let (s2, r2) = digits(r, 2, 2).ok_or_else(fail)?;
                    ss = s2;
                    r = r2;
                }
                v = r;
                offset = Some(sign * (hh * 3600 + mm * 60 + ss) as i32);
            }
            Std::Tz => {
                if v.starts_with("UTC") {
                    zone_name = Some("UTC".into());
                    v = &v[3..];
                    continue;
                }
                let n = v.bytes().take_while(u8::is_ascii_uppercase).count();
                if n < 3 {
                    return Err(fail());
                }
                zone_name = Some(v[..n].to_string());
                v = &v[n..];
            }
        }
    }
    if !v.is_empty() {
        return Err("parsing time: extra text after the value".to_string());
    }
    match pm {
        Some(true) if hour < 12 => hour += 12,
        Some(false) if hour == 12 => hour = 0,
        _ => {}
    }
    if yday >= 0 {
        let d = NaiveDate::from_yo_opt(year as i32, yday as u32)
            .ok_or_else(|| "parsing time: day-of-year out of range".to_string())?;
        month = i64::from(d.month());
        day = i64::from(d.day());
    }
    if !(1..=12).contains(&month) {
        return Err("parsing time: month out of range".to_string());
    }
    let date = NaiveDate::from_ymd_opt(year as i32, month as u32, day as u32)
        .ok_or_else(|| "parsing time: day out of range".to_string())?;
    let wall = date
        .and_hms_nano_opt(hour as u32, min as u32, sec as u32, nanos as u32)
        .ok_or_else(|| "parsing time: hour, minute or second out of range".to_string())?;
    let as_utc_unix = wall.and_utc().timestamp();
    if let Some(off) = offset {
        let utc = wall - TimeDelta::seconds(i64::from(off));
        let unix = utc.and_utc().timestamp();
        let (local_off, local_name) = local.lookup(unix);
        let (o, name) = if local_off == off {
            (local_off, local_name)
        } else if off == 0 && zone_name.as_deref() == Some("UTC") {
            (0, "UTC".to_string())
        } else {
            (off, String::new())
        };
        return Ok(GoTime {
            utc,
            offset: o,
            zone: name,
        });
    }
    if let Some(name) = zone_name {
        if name == "UTC" {
            return Ok(GoTime {
                utc: wall,
                offset: 0,
                zone: name,
            });
        }
        // a local abbreviation takes the local offset, any other a zero offset under its name
        let (local_off, local_name) = local.lookup(as_utc_unix);
        if local_name == name {
            return Ok(GoTime {
                utc: wall - TimeDelta::seconds(i64::from(local_off)),
                offset: local_off,
                zone: name,
            });
        }
        return Ok(GoTime {
            utc: wall,
            offset: 0,
            zone: name,
        });
    }
    // no zone in the text: the wall time in the local zone
    let (guess, _) = local.lookup(as_utc_unix);
    let utc = wall - TimeDelta::seconds(i64::from(guess));
    let (off, name) = local.lookup(utc.and_utc().timestamp());
    Ok(GoTime {
        utc: wall - TimeDelta::seconds(i64::from(off)),
        offset: off,
        zone: name,
    })
}

fn frac_nanos(digits: &str) -> i64 {
    let mut d: String = digits.chars().take(9).collect();
    while d.len() < 9 {
        d.push('0');
    }
    d.parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> GoTime {
        parse("2006-01-02T15:04:05Z07:00", text, &Zone::Utc).unwrap()
    }

    #[test]
    fn formats_as_go() {
        let t = at("2024-05-06T17:08:09.5Z");
        assert_eq!(
            format(&t, "Jan _2 Monday 3:04PM pm .999999"),
            "May  6 Monday 5:08PM pm .5"
        );
        assert_eq!(format(&t, "Z07:00 -0700 MST"), "Z +0000 UTC");
        assert_eq!(t.show(), "2024-05-06 17:08:09.5 +0000 UTC");
        let t = at("2024-05-06T07:08:09+02:00");
        assert_eq!(t.show(), "2024-05-06 07:08:09 +0200 +0200");
        assert_eq!(GoTime::read(&t.show()), Some(t));
    }

    #[test]
    fn parses_as_go() {
        assert_eq!(
            parse("2006-01-02", "2017-12-31", &Zone::Utc)
                .unwrap()
                .show(),
            "2017-12-31 00:00:00 +0000 UTC"
        );
        assert!(parse("2006-01-02", "bad", &Zone::Utc).is_err());
        assert!(parse("2006-01-02", "2017-02-30", &Zone::Utc).is_err());
    }
}
