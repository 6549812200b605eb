//! sprig's random text: `randAlpha`, `randAlphaNum`, `randAscii`, `randNumeric`, `shuffle` and
//! `uuidv4`, from the operating system's random number generator.

use super::crypto::fill_random;
use super::go::{exactly, int_param, str_param};
use super::gotmpl::{Func, FuncError, Value};

/// The functions defined here.
pub(super) const FUNCTIONS: &[(&str, Func)] = &[
    ("randAlpha", rand_alpha as Func),
    ("randAlphaNum", rand_alpha_num as Func),
    ("randAscii", rand_ascii as Func),
    ("randNumeric", rand_numeric as Func),
    ("shuffle", shuffle as Func),
    ("uuidv4", uuidv4 as Func),
];

/// A uniform index below `n` (n > 0).
fn below(n: usize, function: &str) -> Result<usize, FuncError> {
    let bound = n as u64;
    let zone = u64::MAX - u64::MAX % bound;
    loop {
        let mut b = [0u8; 8];
        fill_random(&mut b, function)?;
        let v = u64::from_le_bytes(b);
        if v < zone {
            return Ok((v % bound) as usize);
        }
    }
}

/// `count` characters drawn from `alphabet`; "" for a negative count, as sprig.
fn random_text(args: &[Value], function: &str, alphabet: &[u8]) -> Result<Value, FuncError> {
    exactly(args, function, 1)?;
    let count = int_param(&args[0])?;
    let Ok(count) = usize::try_from(count) else {
        return Ok(Value::String(String::new()));
    };
    let limit = super::gotmpl::limits::active()
        .function_output
        .unwrap_or(usize::MAX);
    if count > limit {
        return Err(FuncError::TooMuchOutput {
            function: function.into(),
            count,
            what: "bytes".into(),
            limit,
        });
    }
    let mut out = String::with_capacity(count);
    for _ in 0..count {
        out.push(char::from(alphabet[below(alphabet.len(), function)?]));
    }
    Ok(Value::String(out))
}

const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";

fn rand_alpha(args: &[Value]) -> Result<Value, FuncError> {
    random_text(args, "randAlpha", LETTERS)
}

fn rand_alpha_num(args: &[Value]) -> Result<Value, FuncError> {
    let alphabet: Vec<u8> = LETTERS.iter().chain(DIGITS).copied().collect();
    random_text(args, "randAlphaNum", &alphabet)
}

fn rand_ascii(args: &[Value]) -> Result<Value, FuncError> {
    let alphabet: Vec<u8> = (32u8..=126).collect();
    random_text(args, "randAscii", &alphabet)
}

fn rand_numeric(args: &[Value]) -> Result<Value, FuncError> {
    random_text(args, "randNumeric", DIGITS)
}

/// `shuffle s`: the characters of `s` in random order.
fn shuffle(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "shuffle", 1)?;
    let mut chars: Vec<char> = str_param(&args[0])?.chars().collect();
    for i in (1..chars.len()).rev() {
        let j = below(i + 1, "shuffle")?;
        chars.swap(i, j);
    }
    Ok(Value::String(chars.into_iter().collect()))
}

/// `uuidv4`: a random (version 4) UUID.
fn uuidv4(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "uuidv4", 0)?;
    let mut b = [0u8; 16];
    fill_random(&mut b, "uuidv4")?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(Value::String(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )))
}
