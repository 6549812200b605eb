//! Kubernetes' quantity library: `quantity(<string>)`, `isQuantity`, `sign`, `isGreaterThan`,
//! `isLessThan`, `compareTo`, `add`, `sub` (a quantity or an int), `asInteger`, `isInteger`
//! and `asApproximateFloat`.
//!
//! Quantities parse as `resource.ParseQuantity` does (`1.5Gi`, `200m`, `1e3`): decimal and
//! binary suffixes, rounding up to the nano, binary amounts capped at 2^63-1. Values are exact
//! decimals of up to 38 significant digits.

use std::cmp::Ordering;

use cel::common::types::{CelBool, CelDouble, CelInt, CelString};
use cel::{DeclarationError, Env, ExecutionError};

use super::env::fail;

const FORMAT_WRONG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
const NUMERIC: &str = "unable to parse numeric part of quantity";
const SUFFIX: &str = "unable to parse quantity's suffix";

/// An amount: `mantissa × 10^exponent`, the mantissa without trailing zeros
/// (`kubernetes.Quantity`).
#[derive(Debug, Clone)]
pub(super) struct Quantity {
    mantissa: i128,
    exponent: i32,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.cmp_to(other) == Ordering::Equal
    }
}

opaque_val!(Quantity, "kubernetes.Quantity");

impl Quantity {
    /// `mantissa × 10^exponent`, normalised.
    fn new(mut mantissa: i128, mut exponent: i32) -> Self {
        if mantissa == 0 {
            return Self {
                mantissa,
                exponent: 0,
            };
        }
        while mantissa % 10 == 0 {
            let Some(e) = exponent.checked_add(1) else {
                break;
            };
            mantissa /= 10;
            exponent = e;
        }
        Self { mantissa, exponent }
    }

    /// The mantissa scaled to `exponent` (≤ its own), if it fits.
    fn scaled_to(&self, exponent: i32) -> Option<i128> {
        let shift = u32::try_from(i64::from(self.exponent) - i64::from(exponent)).ok()?;
        10i128
            .checked_pow(shift)
            .and_then(|f| self.mantissa.checked_mul(f))
    }

    fn cmp_to(&self, other: &Self) -> Ordering {
        let signs = self.mantissa.signum().cmp(&other.mantissa.signum());
        if signs != Ordering::Equal || self.mantissa == 0 {
            return signs;
        }
        let common = self.exponent.min(other.exponent);
        match (self.scaled_to(common), other.scaled_to(common)) {
            (Some(a), Some(b)) => a.cmp(&b),
            // the side that does not fit is the larger in magnitude
            (None, _) if self.mantissa > 0 => Ordering::Greater,
            (None, _) => Ordering::Less,
            (_, None) if other.mantissa > 0 => Ordering::Less,
            (_, None) => Ordering::Greater,
        }
    }

    fn plus(&self, other: &Self, function: &str) -> Result<Self, ExecutionError> {
        let common = self.exponent.min(other.exponent);
        let sum = self
            .scaled_to(common)
            .zip(other.scaled_to(common))
            .and_then(|(a, b)| a.checked_add(b))
            .ok_or_else(|| fail(function, "quantity overflow"))?;
        Ok(Self::new(sum, common))
    }

    fn negated(&self) -> Self {
        Self::new(
            self.mantissa.checked_neg().unwrap_or(i128::MAX),
            self.exponent,
        )
    }

    fn as_i64(&self) -> Option<i64> {
        if self.exponent < 0 {
            return None;
        }
        self.scaled_to(0).and_then(|v| i64::try_from(v).ok())
    }
}

/// Parses a quantity as `resource.ParseQuantity`; the error is its message.
fn parse(s: &str) -> Result<Quantity, &'static str> {
    if s.is_empty() {
        return Err(FORMAT_WRONG);
    }
    let bytes = s.as_bytes();
    let mut pos = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            pos = 1;
            true
        }
        Some(b'+') => {
            pos = 1;
            false
        }
        _ => false,
    };
    let digits_from = |from: usize| {
        from + bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let num_end = digits_from(pos);
    let num = &s[pos..num_end];
    pos = num_end;
    let mut denom = "";
    if bytes.get(pos) == Some(&b'.') {
        let end = digits_from(pos + 1);
        denom = &s[pos + 1..end];
        pos = end;
    }
    let suffix_start = pos;
    pos += bytes[pos..]
        .iter()
        .take_while(|b| b"eEinumkKMGTP".contains(b))
        .count();
    if matches!(bytes.get(pos), Some(b'-' | b'+')) {
        pos += 1;
    }
    if digits_from(pos) != bytes.len() {
        return Err(FORMAT_WRONG);
    }
    let suffix = &s[suffix_start..];
    let (binary, power) = match suffix {
        "" => (false, 0),
        "n" => (false, -9),
        "u" => (false, -6),
        "m" => (false, -3),
        "k" => (false, 3),
        "M" => (false, 6),
        "G" => (false, 9),
        "T" => (false, 12),
        "P" => (false, 15),
        "E" => (false, 18),
        "Ki" => (true, 10),
        "Mi" => (true, 20),
        "Gi" => (true, 30),
        "Ti" => (true, 40),
        "Pi" => (true, 50),
        "Ei" => (true, 60),
        e if e.len() > 1 && (e.starts_with('e') || e.starts_with('E')) => {
            let p = e[1..].parse::<i32>().map_err(|_| SUFFIX)?;
            (false, p)
        }
        _ => return Err(SUFFIX),
    };
    if num.is_empty() && denom.is_empty() {
        return Err(NUMERIC);
    }
    let digits = format!("{num}{denom}");
    let mut mantissa: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| NUMERIC)?
    };
    let denom_len = i32::try_from(denom.len()).map_err(|_| NUMERIC)?;
    let mut exponent = -denom_len;
    if binary {
        let factor = 1i128 << power;
        mantissa = mantissa.checked_mul(factor).unwrap_or(i128::MAX);
    } else {
        exponent = exponent.checked_add(power).ok_or(NUMERIC)?;
    }
    // anything finer than a nano rounds up to the next nano
    if exponent < -9 && mantissa != 0 {
        let shift = u32::try_from(-9 - i64::from(exponent)).unwrap_or(u32::MAX);
        mantissa = match 10i128.checked_pow(shift) {
            Some(f) => mantissa / f + i128::from(mantissa % f != 0),
            None => 1,
        };
        exponent = -9;
    }
    let mut q = Quantity::new(mantissa, exponent);
    if binary && q.cmp_to(&Quantity::new(i64::MAX.into(), 0)) == Ordering::Greater {
        q = Quantity::new(i64::MAX.into(), 0);
    }
    Ok(if negative { q.negated() } else { q })
}

/// Declares the quantity functions on `env`.
pub(super) fn extension(env: &mut Env) -> Result<(), DeclarationError> {
    cel::add_overload!(env, fn quantity: (CelString) -> Result<Quantity>,
        id = "string_to_quantity")?;
    cel::add_overload!(env, fn is_quantity: (CelString) -> CelBool, id = "is_quantity_string")?;
    cel::add_overload!(env, fn sign: (Quantity) -> CelInt, id = "quantity_sign")?;
    // the library's documentation also writes `q.sign()`
    cel::add_member_overload!(env, fn sign: (Quantity) -> CelInt, id = "quantity_sign_member")?;
    cel::add_member_overload!(env, fn is_greater_than: (Quantity, Quantity) -> CelBool,
        id = "quantity_is_greater_than")?;
    cel::add_member_overload!(env, fn is_less_than: (Quantity, Quantity) -> CelBool,
        id = "quantity_is_less_than")?;
    cel::add_member_overload!(env, fn compare_to: (Quantity, Quantity) -> CelInt,
        id = "quantity_compare_to")?;
    cel::add_member_overload!(env, fn as_approximate_float: (Quantity) -> CelDouble,
        id = "quantity_get_float")?;
    cel::add_member_overload!(env, fn as_integer: (Quantity) -> Result<CelInt>,
        id = "quantity_get_int")?;
    cel::add_member_overload!(env, fn is_integer: (Quantity) -> CelBool,
        id = "quantity_is_integer")?;
    cel::add_member_overload!(env, fn add: (Quantity, Quantity) -> Result<Quantity>,
        id = "quantity_add")?;
    cel::add_member_overload!(env, fn add_int: (Quantity, CelInt) -> Result<Quantity>,
        name = "add", id = "quantity_add_int")?;
    cel::add_member_overload!(env, fn sub: (Quantity, Quantity) -> Result<Quantity>,
        id = "quantity_sub")?;
    cel::add_member_overload!(env, fn sub_int: (Quantity, CelInt) -> Result<Quantity>,
        name = "sub", id = "quantity_sub_int")?;
    Ok(())
}

fn quantity(s: &CelString<'_>) -> Result<Quantity, ExecutionError> {
    parse(s.inner()).map_err(|e| fail("quantity", e))
}

fn is_quantity(s: &CelString<'_>) -> CelBool {
    CelBool::from(parse(s.inner()).is_ok())
}

fn sign(q: &Quantity) -> CelInt {
    CelInt::from(i64::try_from(q.mantissa.signum()).unwrap_or(0))
}

fn is_greater_than(q: &Quantity, other: &Quantity) -> CelBool {
    CelBool::from(q.cmp_to(other) == Ordering::Greater)
}

fn is_less_than(q: &Quantity, other: &Quantity) -> CelBool {
    CelBool::from(q.cmp_to(other) == Ordering::Less)
}

fn compare_to(q: &Quantity, other: &Quantity) -> CelInt {
    CelInt::from(match q.cmp_to(other) {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    })
}

fn as_approximate_float(q: &Quantity) -> CelDouble {
    // f64 from an i128 mantissa loses digits, as the real server's approximation does
    #[allow(clippy::cast_precision_loss)]
    let m = q.mantissa as f64;
    CelDouble::from(m * 10f64.powi(q.exponent))
}

fn as_integer(q: &Quantity) -> Result<CelInt, ExecutionError> {
    q.as_i64()
        .map(CelInt::from)
        .ok_or_else(|| fail("asInteger", "cannot convert value to integer"))
}

fn is_integer(q: &Quantity) -> CelBool {
    CelBool::from(q.as_i64().is_some())
}

fn add(q: &Quantity, other: &Quantity) -> Result<Quantity, ExecutionError> {
    q.plus(other, "add")
}

fn add_int(q: &Quantity, i: &CelInt) -> Result<Quantity, ExecutionError> {
    q.plus(&Quantity::new((*i.inner()).into(), 0), "add")
}

fn sub(q: &Quantity, other: &Quantity) -> Result<Quantity, ExecutionError> {
    q.plus(&other.negated(), "sub")
}

fn sub_int(q: &Quantity, i: &CelInt) -> Result<Quantity, ExecutionError> {
    q.plus(&Quantity::new(-i128::from(*i.inner()), 0), "sub")
}

#[cfg(test)]
mod tests {
    use super::super::env::{eval, no, yes};
    use super::*;
    use cel::Value;

    #[test]
    fn parsing() {
        for good in [
            "1.3G", "1.3Gi", "10000k", "200m", "1e3", "1E-3", ".5", "1.", "-5Mi", "+2", "0",
        ] {
            assert!(parse(good).is_ok(), "{good}");
        }
        assert_eq!(parse("200K").err(), Some(SUFFIX));
        assert_eq!(parse("1,3G").err(), Some(FORMAT_WRONG));
        assert_eq!(parse("Three").err(), Some(FORMAT_WRONG));
        assert_eq!(parse("Mi").err(), Some(NUMERIC));
        assert_eq!(parse("").err(), Some(FORMAT_WRONG));
        assert_eq!(parse("1.5.5").err(), Some(FORMAT_WRONG));
        assert_eq!(
            parse("0.1n"),
            Ok(Quantity::new(1, -9)),
            "rounds up to a nano"
        );
        assert_eq!(parse("1.5Gi"), Ok(Quantity::new(1_610_612_736, 0)));
        assert_eq!(
            parse("16Ei"),
            Ok(Quantity::new(i64::MAX.into(), 0)),
            "capped"
        );
    }

    #[test]
    fn extreme_exponents_neither_panic_nor_wrap() {
        assert!(parse("10e2147483647").is_ok());
        assert!(parse("1e-2147483648").is_ok());
        assert_eq!(parse("1e2147483648").err(), Some(SUFFIX));
    }

    #[test]
    fn is_quantity_and_errors() {
        yes("isQuantity('1.3Gi')");
        no("isQuantity('200K')");
        no("isQuantity('Mi')");
        assert_eq!(eval("quantity('200K')"), Err(SUFFIX.to_string()));
    }

    #[test]
    fn comparisons() {
        assert_eq!(
            eval("quantity('200M').compareTo(quantity('0.2G'))"),
            Ok(Value::Int(0))
        );
        assert_eq!(
            eval("quantity('50M').compareTo(quantity('50Mi'))"),
            Ok(Value::Int(-1))
        );
        assert_eq!(
            eval("quantity('50Mi').compareTo(quantity('50M'))"),
            Ok(Value::Int(1))
        );
        yes("quantity('150Mi').isGreaterThan(quantity('100Mi'))");
        no("quantity('50Mi').isGreaterThan(quantity('100Mi'))");
        yes("quantity('50M').isLessThan(quantity('100M'))");
        yes("quantity('1e50').isGreaterThan(quantity('9999999999999999999999999999999999999G'))");
        yes("quantity('-1e40').isLessThan(quantity('1'))");
        yes("quantity('10e2147483647').isGreaterThan(quantity('1e-2147483648'))");
        yes("quantity('-10e2147483647').isLessThan(quantity('-1e-2147483648'))");
        yes("quantity('1k') == quantity('1000')");
        assert_eq!(eval("sign(quantity('-1m'))"), Ok(Value::Int(-1)));
        assert_eq!(eval("quantity('0').sign()"), Ok(Value::Int(0)));
    }

    #[test]
    fn arithmetic() {
        yes("quantity('50k').add(quantity('20k')) == quantity('70k')");
        yes("quantity('50k').add(20) == quantity('50020')");
        yes("quantity('50k').sub(quantity('20k')) == quantity('30k')");
        yes("quantity('50k').sub(20000) == quantity('30k')");
        yes("quantity('50k').add(20).sub(quantity('100k')).sub(-50000) == quantity('20')");
    }

    #[test]
    fn conversions() {
        yes("quantity('50000000G').isInteger()");
        assert_eq!(eval("quantity('50k').asInteger()"), Ok(Value::Int(50_000)));
        no("quantity('9999999999999999999999999999999999999G').isInteger()");
        no("quantity('1m').isInteger()");
        assert_eq!(
            eval("quantity('9999999999999999999999999999999999999G').asInteger()"),
            Err("cannot convert value to integer".to_string())
        );
        assert_eq!(
            eval("quantity('50k').sub(20000).asApproximateFloat()"),
            Ok(Value::Float(30_000.0))
        );
        assert_eq!(
            eval("quantity('1.5').asApproximateFloat()"),
            Ok(Value::Float(1.5))
        );
    }
}
