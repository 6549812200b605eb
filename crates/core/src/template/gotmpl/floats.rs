//! Go's `strconv.FormatFloat` for the `e`, `f` and `g` formats, shortest or with a precision.

/// Which of Go's float formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatFormat {
    /// `f`: no exponent.
    Fixed,
    /// `e`: `d.dddde±dd`.
    Exponent,
    /// `E`.
    ExponentUpper,
    /// `g`: `e` for large or small exponents, else `f`.
    General,
    /// `G`.
    GeneralUpper,
}

/// Decimal digits (no trailing zeros) and the decimal point's position: value = 0.DIGITS × 10^dp.
struct Digits {
    digits: Vec<u8>,
    dp: i32,
}

/// The shortest digits that read back as `v` (`v` finite and not negative), or `v` rounded to
/// `significant` digits.
fn digits(v: f64, significant: Option<usize>) -> Digits {
    let text = match significant {
        None => format!("{v:e}"),
        Some(n) => format!("{v:.*e}", n.saturating_sub(1)),
    };
    let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    if digits == [b'0'] {
        return Digits { digits, dp: 1 };
    }
    Digits {
        digits,
        dp: exp + 1,
    }
}

/// Formats `v` as Go's `strconv.FormatFloat(v, fmt, precision or -1, 64)`.
pub fn format_float(v: f64, format: FloatFormat, precision: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let neg = v.is_sign_negative();
    let a = v.abs();
    let body = match format {
        FloatFormat::Fixed => match precision {
            Some(p) => format!("{a:.p$}"),
            None => {
                let d = digits(a, None);
                fixed(&d, (d.digits.len() as i32 - d.dp).max(0) as usize)
            }
        },
        FloatFormat::Exponent | FloatFormat::ExponentUpper => {
            let d = digits(a, precision.map(|p| p + 1));
            let p = precision.unwrap_or(d.digits.len().saturating_sub(1));
            let s = exponent(&d, p);
            upper(s, format == FloatFormat::ExponentUpper)
        }
        FloatFormat::General | FloatFormat::GeneralUpper => {
            let shortest = precision.is_none();
            let mut prec = match precision {
                Some(0) => 1,
                Some(p) => p,
                None => 0,
            };
            let d = digits(a, if shortest { None } else { Some(prec) });
            let nd = d.digits.len() as i32;
            if shortest {
                prec = nd as usize;
            }
            let mut eprec = prec as i32;
            if eprec > nd && nd >= d.dp {
                eprec = nd;
            }
            if shortest {
                eprec = 6;
            }
            let exp = d.dp - 1;
            let s = if exp < -4 || exp >= eprec {
                let p = prec.min(nd as usize);
                exponent(&d, p.saturating_sub(1))
            } else {
                let p = if prec as i32 > d.dp {
                    nd as usize
                } else {
                    prec
                };
                fixed(&d, (p as i32 - d.dp).max(0) as usize)
            };
            upper(s, format == FloatFormat::GeneralUpper)
        }
    };
    if neg { format!("-{body}") } else { body }
}

fn upper(s: String, on: bool) -> String {
    if on { s.to_uppercase() } else { s }
}

/// `d.ddd` with `frac` digits after the point, then `e±dd`.
fn exponent(d: &Digits, frac: usize) -> String {
    let mut s = String::new();
    s.push(char::from(d.digits[0]));
    if frac > 0 {
        s.push('.');
        for i in 1..=frac {
            s.push(char::from(*d.digits.get(i).unwrap_or(&b'0')));
        }
    }
    let exp = if d.digits == [b'0'] { 0 } else { d.dp - 1 };
    let sign = if exp < 0 { '-' } else { '+' };
    let e = exp.abs();
    if e < 10 {
        s.push_str(&format!("e{sign}0{e}"));
    } else {
        s.push_str(&format!("e{sign}{e}"));
    }
    s
}

/// `ddd.ddd` with `frac` digits after the point.
fn fixed(d: &Digits, frac: usize) -> String {
    let digit = |i: i32| -> char {
        if i < 0 {
            '0'
        } else {
            char::from(*d.digits.get(i as usize).unwrap_or(&b'0'))
        }
    };
    let mut s = String::new();
    if d.dp > 0 {
        for i in 0..d.dp {
            s.push(digit(i));
        }
    } else {
        s.push('0');
    }
    if frac > 0 {
        s.push('.');
        for i in 0..frac as i32 {
            s.push(digit(d.dp + i));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_go() {
        let g = |v| format_float(v, FloatFormat::General, None);
        assert_eq!(g(1e20), "1e+20");
        assert_eq!(g(100000.0), "100000");
        assert_eq!(g(1000000.0), "1e+06");
        assert_eq!(g(2.5), "2.5");
        assert_eq!(g(0.0001), "0.0001");
        assert_eq!(g(0.00001), "1e-05");
        assert_eq!(g(0.0), "0");
        assert_eq!(g(-2.5), "-2.5");
        assert_eq!(g(123456789.0), "1.23456789e+08");
        assert_eq!(format_float(1.23456, FloatFormat::General, Some(3)), "1.23");
        assert_eq!(
            format_float(1234.5, FloatFormat::General, Some(2)),
            "1.2e+03"
        );
        assert_eq!(
            format_float(1.23456, FloatFormat::Exponent, Some(2)),
            "1.23e+00"
        );
        assert_eq!(format_float(1.0, FloatFormat::Exponent, None), "1e+00");
        assert_eq!(format_float(2.5, FloatFormat::Fixed, Some(0)), "2");
        assert_eq!(
            format_float(1e21, FloatFormat::Fixed, None),
            "1000000000000000000000"
        );
        assert_eq!(format_float(0.000123, FloatFormat::Fixed, None), "0.000123");
        assert_eq!(format_float(3.0, FloatFormat::Fixed, Some(6)), "3.000000");
    }
}
