//! The values templates work with, the function type, and how Go's `%v` prints a value.

use std::collections::HashMap;
use std::fmt;

use super::floats::{FloatFormat, format_float};

/// A template function: the evaluated arguments in, a value or an error out.
pub type Func = fn(&[Value]) -> Result<Value, FuncError>;

/// Why a template function failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FuncError {
    /// An argument had a type the function cannot use.
    #[error("unable to convert argument from value")]
    UnableToConvertFromValue,
    /// Too few arguments.
    #[error("{0} requires at least {1} argument(s)")]
    AtLeastXArgs(String, usize),
    /// Not the one count of arguments the function takes.
    #[error("{0} requires exactly {1} argument(s)")]
    ExactlyXArgs(String, usize),
    /// The result would pass the render's limit for one function's result.
    #[error("{function}: {count} {what} is more than the {limit} this allows")]
    TooMuchOutput {
        /// The function.
        function: String,
        /// How many units the result would have.
        count: usize,
        /// The unit ("bytes", "lines", "items").
        what: String,
        /// The limit.
        limit: usize,
    },
    /// Anything else, as a message.
    #[error("{0}")]
    Generic(String),
}

/// How a number is held: Go's `int`/`int64` are told apart by storage (see `go.rs`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NumberKind {
    /// A non-negative integer constant or conversion (Go `int`).
    Unsigned(u64),
    /// A signed integer (`int64` when not negative).
    Signed(i64),
    /// A float64.
    Float(f64),
}

/// A number value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Number(NumberKind);

impl Number {
    /// What the number holds.
    pub fn kind(&self) -> NumberKind {
        self.0
    }
    /// An unsigned integer.
    pub fn unsigned(n: u64) -> Self {
        Self(NumberKind::Unsigned(n))
    }
    /// A signed integer, kept signed even when not negative.
    pub fn signed(n: i64) -> Self {
        Self(NumberKind::Signed(n))
    }
    /// A float, kept a float even when whole.
    pub fn float(n: f64) -> Self {
        Self(NumberKind::Float(n))
    }
    /// The integer, when it is one that fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self.0 {
            NumberKind::Unsigned(n) => i64::try_from(n).ok(),
            NumberKind::Signed(n) => Some(n),
            NumberKind::Float(_) => None,
        }
    }
    /// The integer, when it is one that fits a `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match self.0 {
            NumberKind::Unsigned(n) => Some(n),
            NumberKind::Signed(n) => u64::try_from(n).ok(),
            NumberKind::Float(_) => None,
        }
    }
    /// The float, when it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self.0 {
            NumberKind::Float(f) => Some(f),
            _ => None,
        }
    }
}

impl From<i64> for Number {
    fn from(n: i64) -> Self {
        match u64::try_from(n) {
            Ok(u) => Self::unsigned(u),
            Err(_) => Self::signed(n),
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            NumberKind::Unsigned(n) => write!(f, "{n}"),
            NumberKind::Signed(n) => write!(f, "{n}"),
            NumberKind::Float(x) => f.write_str(&format_float(x, FloatFormat::General, None)),
        }
    }
}

/// A template value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Nothing at all: a missing map key or field (prints `<no value>`).
    NoValue,
    /// Go's nil.
    Nil,
    /// A bool.
    Bool(bool),
    /// A string.
    String(String),
    /// A `map[string]string` (the controllers' dot); its values are strings.
    Object(HashMap<String, Value>),
    /// A `map[string]interface{}`.
    Map(HashMap<String, Value>),
    /// A slice.
    Array(Vec<Value>),
    /// A number.
    Number(Number),
    /// A value of another Go type a function made (`time.Time`, `*semver.Version`, ...): its
    /// type, and its text as Go's `String` method prints it. Its methods are the engine's.
    Typed(Typed),
}

/// A value of a Go type beyond the basic ones, carried as its printed text.
#[derive(Debug, Clone, PartialEq)]
pub struct Typed {
    /// Go's name of the type (`time.Time`).
    pub type_name: &'static str,
    /// Go's `reflect.Kind` of it (`struct`, `ptr`, `int`).
    pub kind: &'static str,
    /// How Go prints it.
    pub text: String,
}

impl Typed {
    /// A value of type `type_name` (kind `kind`) that prints as `text`.
    pub fn value(type_name: &'static str, kind: &'static str, text: impl Into<String>) -> Value {
        Value::Typed(Self {
            type_name,
            kind,
            text: text.into(),
        })
    }

    /// Whether it is of type `type_name`.
    pub fn is<'a>(v: &'a Value, type_name: &str) -> Option<&'a str> {
        match v {
            Value::Typed(t) if t.type_name == type_name => Some(&t.text),
            _ => None,
        }
    }
}

impl Value {
    /// A value from anything that converts into one.
    pub fn from<T: Into<Value>>(t: T) -> Self {
        t.into()
    }

    /// Go's truth: false for false, 0, "", nil, and empty containers.
    pub fn truthy(&self) -> bool {
        match self {
            Value::NoValue | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::String(s) => !s.is_empty(),
            Value::Object(m) | Value::Map(m) => !m.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Typed(t) => !matches!(t.kind, "int" | "uint64") || t.text != "0",
            Value::Number(n) => match n.kind() {
                NumberKind::Unsigned(u) => u != 0,
                NumberKind::Signed(i) => i != 0,
                NumberKind::Float(f) => f != 0.0,
            },
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_string())
    }
}
impl From<&String> for Value {
    fn from(s: &String) -> Self {
        Value::String(s.clone())
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Number(Number::from(n))
    }
}
impl From<i32> for Value {
    fn from(n: i32) -> Self {
        Value::Number(Number::from(i64::from(n)))
    }
}
impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::Number(Number::unsigned(n))
    }
}
impl From<usize> for Value {
    fn from(n: usize) -> Self {
        Value::Number(Number::unsigned(n as u64))
    }
}
impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(Number::float(n))
    }
}
impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Self {
        Value::Array(v.into_iter().map(Into::into).collect())
    }
}
impl<T: Into<Value>> From<HashMap<String, T>> for Value {
    fn from(m: HashMap<String, T>) -> Self {
        Value::Map(m.into_iter().map(|(k, v)| (k, v.into())).collect())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Self {
        o.map_or(Value::Nil, Into::into)
    }
}

impl fmt::Display for Value {
    /// Go's `%v`: containers as `[a b]` and `map[k:v]` with sorted keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::NoValue => f.write_str("<no value>"),
            Value::Nil => f.write_str("<nil>"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::String(s) => f.write_str(s),
            Value::Typed(t) => f.write_str(&t.text),
            Value::Number(n) => write!(f, "{n}"),
            Value::Array(a) => {
                f.write_str("[")?;
                for (i, item) in a.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    match item {
                        Value::NoValue => f.write_str("<nil>")?,
                        other => write!(f, "{other}")?,
                    }
                }
                f.write_str("]")
            }
            Value::Object(m) | Value::Map(m) => {
                f.write_str("map[")?;
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{k}:{}", m[k])?;
                }
                f.write_str("]")
            }
        }
    }
}
