//! The values templates work with, the function type, and how Go's `%v` prints a value.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

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
    /// A negative Go `int`.
    Negative(i64),
    /// A Go `int64`, as sprig's arithmetic returns.
    Signed(i64),
    /// A float64.
    Float(f64),
}

/// A number value. A whole float constant written in the template (`2.0`) is marked, because Go
/// converts it for an `int` parameter while a float64 value is refused.
#[derive(Debug, Clone, Copy)]
pub struct Number(NumberKind, bool);

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Number {
    /// A float constant written in the template; Go converts a whole one to an `int`
    /// argument.
    pub fn float_constant(n: f64) -> Self {
        Self(NumberKind::Float(n), true)
    }
    /// The integer a whole float constant stands for, when this is one.
    pub fn whole_constant(&self) -> Option<i64> {
        match self.0 {
            NumberKind::Float(f)
                if self.1 && f.fract() == 0.0 && f.abs() < 9_223_372_036_854_775_807.0 =>
            {
                Some(f as i64)
            }
            _ => None,
        }
    }
    /// The same number, no longer marked as a constant.
    pub fn plain(self) -> Self {
        Self(self.0, false)
    }
    /// What the number holds.
    pub fn kind(&self) -> NumberKind {
        self.0
    }
    /// An unsigned integer.
    pub fn unsigned(n: u64) -> Self {
        Self(NumberKind::Unsigned(n), false)
    }
    /// A signed integer, kept signed even when not negative.
    pub fn signed(n: i64) -> Self {
        Self(NumberKind::Signed(n), false)
    }
    /// A float, kept a float even when whole.
    pub fn float(n: f64) -> Self {
        Self(NumberKind::Float(n), false)
    }
    /// The integer, when it is one that fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self.0 {
            NumberKind::Unsigned(n) => i64::try_from(n).ok(),
            NumberKind::Signed(n) | NumberKind::Negative(n) => Some(n),
            NumberKind::Float(_) => None,
        }
    }
    /// The integer, when it is one that fits a `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match self.0 {
            NumberKind::Unsigned(n) => Some(n),
            NumberKind::Signed(n) | NumberKind::Negative(n) => u64::try_from(n).ok(),
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
            Err(_) => Self(NumberKind::Negative(n), false),
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            NumberKind::Unsigned(n) => write!(f, "{n}"),
            NumberKind::Signed(n) | NumberKind::Negative(n) => write!(f, "{n}"),
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
    Object(GoMap),
    /// A `map[string]interface{}`, shared by reference as Go's maps are.
    Map(GoMap),
    /// A slice.
    Array(List),
    /// A number.
    Number(Number),
    /// A value of another Go type a function made (`time.Time`, `*semver.Version`, ...): its
    /// type, and its text as Go's `String` method prints it. Its methods are the engine's.
    Typed(Typed),
}

/// A Go slice's element type, as far as the engine tells them apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Elem {
    /// `[]interface {}`, what most functions make.
    #[default]
    Interface,
    /// `[]string` (`splitList`, `keys`, `sortAlpha`, ...).
    String,
    /// `[]int` (`until`, `untilStep`).
    Int,
    /// `[][]interface {}` (`chunk`).
    Lists,
}

/// A Go slice: its items, its element type, and whether it is nil (an empty nil slice prints
/// `[]` but is `null` in JSON).
#[derive(Clone, Default)]
pub struct List {
    items: Vec<Value>,
    elem: Elem,
    nil: bool,
}

impl List {
    /// A `[]string` holding `items` (strings).
    pub fn strings(items: Vec<Value>) -> Self {
        Self::typed(items, Elem::String)
    }
    /// An `[]int` holding `items` (Go `int`s).
    pub fn ints(items: Vec<Value>) -> Self {
        Self::typed(items, Elem::Int)
    }
    /// A slice of element type `elem` holding `items`.
    pub fn typed(items: Vec<Value>, elem: Elem) -> Self {
        Self {
            items,
            elem,
            nil: false,
        }
    }
    /// A nil slice, a `[]string` when `strings`.
    pub fn nil(strings: bool) -> Self {
        Self {
            items: Vec::new(),
            elem: if strings {
                Elem::String
            } else {
                Elem::Interface
            },
            nil: true,
        }
    }
    /// Go's name of its type.
    pub fn type_name(&self) -> &'static str {
        match self.elem {
            Elem::Interface => "[]interface {}",
            Elem::String => "[]string",
            Elem::Int => "[]int",
            Elem::Lists => "[][]interface {}",
        }
    }
    /// Its element type.
    pub fn elem(&self) -> Elem {
        self.elem
    }
    /// Whether it is a `[]string`.
    pub fn is_strings(&self) -> bool {
        self.elem == Elem::String
    }
    /// Whether it is a nil slice.
    pub fn is_nil(&self) -> bool {
        self.nil && self.items.is_empty()
    }
    /// The items.
    pub fn into_vec(self) -> Vec<Value> {
        self.items
    }
}

impl std::ops::Deref for List {
    type Target = Vec<Value>;
    fn deref(&self) -> &Vec<Value> {
        &self.items
    }
}

impl std::ops::DerefMut for List {
    fn deref_mut(&mut self) -> &mut Vec<Value> {
        &mut self.items
    }
}

impl PartialEq for List {
    fn eq(&self, other: &Self) -> bool {
        self.items == other.items
    }
}

impl fmt::Debug for List {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.items.fmt(f)
    }
}

impl From<Vec<Value>> for List {
    fn from(items: Vec<Value>) -> Self {
        Self {
            items,
            elem: Elem::Interface,
            nil: false,
        }
    }
}

impl FromIterator<Value> for List {
    fn from_iter<I: IntoIterator<Item = Value>>(iter: I) -> Self {
        Self::from(iter.into_iter().collect::<Vec<_>>())
    }
}

impl IntoIterator for List {
    type Item = Value;
    type IntoIter = std::vec::IntoIter<Value>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl<'a> IntoIterator for &'a List {
    type Item = &'a Value;
    type IntoIter = std::slice::Iter<'a, Value>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

/// A Go map: cloning it shares it, so `set`, `unset` and `merge` change it for every holder, as
/// in Go. A render is single-threaded; the lock makes the value `Send` and `Sync`.
#[derive(Clone, Default)]
pub struct GoMap(Arc<RwLock<HashMap<String, Value>>>);

impl GoMap {
    /// A new map holding `m`.
    pub fn new(m: HashMap<String, Value>) -> Self {
        Self(Arc::new(RwLock::new(m)))
    }

    /// Reads the map.
    pub fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Value>> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes the map in place, for every holder.
    pub fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, Value>> {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of the entries (nested maps stay shared).
    pub fn snapshot(&self) -> HashMap<String, Value> {
        self.read().clone()
    }

    /// Whether both are the same map.
    pub fn same(&self, other: &GoMap) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The map's identity while it lives.
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.0) as *const () as usize
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether it has no entries.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// The value at `key`.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.read().get(key).cloned()
    }
}

impl PartialEq for GoMap {
    fn eq(&self, other: &Self) -> bool {
        self.same(other) || *self.read() == *other.read()
    }
}

impl fmt::Debug for GoMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.read().fmt(f)
    }
}

impl From<HashMap<String, Value>> for GoMap {
    fn from(m: HashMap<String, Value>) -> Self {
        Self::new(m)
    }
}

impl FromIterator<(String, Value)> for GoMap {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Self::new(iter.into_iter().collect())
    }
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

    /// A copy that shares no map with this value (sprig's `deepCopy`).
    pub fn deep_copy(&self) -> Value {
        match self {
            Value::Map(m) => Value::Map(
                m.read()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.deep_copy()))
                    .collect(),
            ),
            Value::Object(m) => Value::Object(m.snapshot().into()),
            Value::Array(a) => Value::Array(List::typed(
                a.iter().map(Value::deep_copy).collect(),
                a.elem(),
            )),
            other => other.clone(),
        }
    }

    /// Empties every map this value reaches, which ends any cycle among them (a map set into
    /// itself); for a render that fails anyway.
    pub fn clear_maps(&self) {
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![self.clone()];
        while let Some(v) = stack.pop() {
            match v {
                Value::Array(a) => stack.extend(a),
                Value::Map(m) | Value::Object(m) if seen.insert(m.id()) => {
                    let entries = std::mem::take(&mut *m.write());
                    stack.extend(entries.into_values());
                }
                _ => {}
            }
        }
    }

    /// Go's truth: false for false, 0, "", nil, and empty containers.
    pub fn truthy(&self) -> bool {
        match self {
            Value::NoValue | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::String(s) => !s.is_empty(),
            Value::Object(m) | Value::Map(m) => !m.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Typed(t) => !matches!(t.kind, "int" | "uint8" | "uint64") || t.text != "0",
            Value::Number(n) => match n.kind() {
                NumberKind::Unsigned(u) => u != 0,
                NumberKind::Signed(i) | NumberKind::Negative(i) => i != 0,
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
                let m = m.read();
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
