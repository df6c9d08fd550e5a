//! The value tree and its accessors.

use std::fmt;
use std::ops::{Index, IndexMut};

#[derive(Clone, Debug, Default, PartialEq)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Value>),
    Object(Map),
}

/// A JSON number as the narrowest of u64, i64 or f64 that holds it (integers stay exact). A parsed number that
/// is not a plain integer also keeps its text, written back as it came: a gateway forwards `1.10`, `-0` and
/// `123456789012345678901234567890` as the client wrote them, not as a float would print them.
#[derive(Clone, Debug, PartialEq)]
pub struct Number(pub(super) N);

#[derive(Clone, Debug)]
pub(super) enum N {
    U(u64),
    I(i64),
    F(f64),
    Text(f64, Box<str>),
}

/// Equal numbers are equal however they were written (`1.5` and `1.50`); integers and floats stay apart.
impl PartialEq for N {
    fn eq(&self, other: &N) -> bool {
        match (self, other) {
            (N::U(a), N::U(b)) => a == b,
            (N::I(a), N::I(b)) => a == b,
            (N::F(a) | N::Text(a, _), N::F(b) | N::Text(b, _)) => a == b,
            _ => false,
        }
    }
}

impl Number {
    /// None for NaN and the infinities, which JSON cannot carry.
    pub fn from_f64(f: f64) -> Option<Number> {
        f.is_finite().then_some(Number(N::F(f)))
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self.0 {
            N::U(u) => Some(u),
            N::I(_) | N::F(_) | N::Text(..) => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self.0 {
            N::U(u) => i64::try_from(u).ok(),
            N::I(i) => Some(i),
            N::F(_) | N::Text(..) => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        Some(match self.0 {
            N::U(u) => u as f64,
            N::I(i) => i as f64,
            N::F(f) | N::Text(f, _) => f,
        })
    }
}

/// A JSON object: keys in the order they were first inserted, each at most once.
#[derive(Clone, Default)]
pub struct Map {
    entries: Vec<(String, Value)>,
}

impl Map {
    pub fn new() -> Map {
        Map::default()
    }

    pub fn with_capacity(n: usize) -> Map {
        Map {
            entries: Vec::with_capacity(n),
        }
    }

    /// Entries appended without looking for an existing key: only for the parser, which removes duplicates
    /// once the object is complete.
    pub(super) fn from_entries(entries: Vec<(String, Value)>) -> Map {
        Map { entries }
    }

    pub(super) fn entries_mut(&mut self) -> &mut Vec<(String, Value)> {
        &mut self.entries
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|(k, _)| k == key)
    }

    /// Sets `key`, keeping its place if it was there; returns the value it replaced.
    pub fn insert(&mut self, key: String, value: Value) -> Option<Value> {
        match self.position(&key) {
            Some(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value of `key`, added as null first if it is missing.
    fn slot(&mut self, key: &str) -> &mut Value {
        let i = match self.position(key) {
            Some(i) => i,
            None => {
                self.entries.push((key.to_owned(), Value::Null));
                self.entries.len() - 1
            }
        };
        &mut self.entries[i].1
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Removes `key`, keeping the order of the others.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.position(key)?;
        Some(self.entries.remove(i).1)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&String, &Value)> + ExactSizeIterator {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn iter_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = (&String, &mut Value)> + ExactSizeIterator {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator {
        self.entries.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Value> + ExactSizeIterator {
        self.entries.iter().map(|(_, v)| v)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&String, &mut Value) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }
}

/// Equal when they hold the same keys with equal values, in any order (as JSON objects are).
impl PartialEq for Map {
    fn eq(&self, other: &Map) -> bool {
        self.len() == other.len()
            && self
                .entries
                .iter()
                .all(|(k, v)| other.get(k).is_some_and(|o| o == v))
    }
}

impl fmt::Debug for Map {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl IntoIterator for Map {
    type Item = (String, Value);
    type IntoIter = std::vec::IntoIter<(String, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'a> IntoIterator for &'a Map {
    type Item = (&'a String, &'a Value);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, Value)>,
        fn(&'a (String, Value)) -> (&'a String, &'a Value),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

impl FromIterator<(String, Value)> for Map {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Map {
        let mut m = Map::new();
        m.extend(iter);
        m
    }
}

impl Extend<(String, Value)> for Map {
    fn extend<I: IntoIterator<Item = (String, Value)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

/// What [`Value::get`] and indexing accept: a key of an object or a position in an array.
pub trait Key {
    fn find(self, v: &Value) -> Option<&Value>;
    fn find_mut(self, v: &mut Value) -> Option<&mut Value>;
    /// For assignment: see `IndexMut for Value`.
    fn slot(self, v: &mut Value) -> &mut Value;
}

/// Any string-like key (`&str`, `&String`, `&&str`) names an object member.
impl<T: AsRef<str> + ?Sized> Key for &T {
    fn find(self, v: &Value) -> Option<&Value> {
        v.as_object()?.get(self.as_ref())
    }
    fn find_mut(self, v: &mut Value) -> Option<&mut Value> {
        v.as_object_mut()?.get_mut(self.as_ref())
    }
    fn slot(self, v: &mut Value) -> &mut Value {
        let key = self.as_ref();
        if v.is_null() {
            *v = Value::Object(Map::new());
        }
        match v {
            Value::Object(m) => m.slot(key),
            _ => panic!("cannot index a non-object JSON value by key {key:?}"),
        }
    }
}

impl Key for usize {
    fn find(self, v: &Value) -> Option<&Value> {
        v.as_array()?.get(self)
    }
    fn find_mut(self, v: &mut Value) -> Option<&mut Value> {
        v.as_array_mut()?.get_mut(self)
    }
    fn slot(self, v: &mut Value) -> &mut Value {
        match v.as_array_mut() {
            Some(a) => &mut a[self],
            None => panic!("cannot index a non-array JSON value by position {self}"),
        }
    }
}

static NULL: Value = Value::Null;

impl Value {
    /// The member `key` of an object or the element at a position of an array; None for anything else.
    pub fn get<K: Key>(&self, key: K) -> Option<&Value> {
        key.find(self)
    }

    pub fn get_mut<K: Key>(&mut self, key: K) -> Option<&mut Value> {
        key.find_mut(self)
    }

    /// Follows a JSON Pointer (RFC 6901), e.g. `/choices/0/message`.
    pub fn pointer(&self, pointer: &str) -> Option<&Value> {
        if pointer.is_empty() {
            return Some(self);
        }
        let mut v = self;
        for token in pointer.strip_prefix('/')?.split('/') {
            let token = token.replace("~1", "/").replace("~0", "~");
            v = match v {
                Value::Object(m) => m.get(&token)?,
                Value::Array(a) => {
                    if token.len() > 1 && token.starts_with('0') {
                        return None;
                    }
                    a.get(token.parse::<usize>().ok()?)?
                }
                _ => return None,
            };
        }
        Some(v)
    }

    /// Moves the value out, leaving null.
    pub fn take(&mut self) -> Value {
        std::mem::take(self)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_array_mut(&mut self) -> Option<&mut Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Map> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_object_mut(&mut self) -> Option<&mut Map> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn is_object(&self) -> bool {
        matches!(self, Value::Object(_))
    }
}

/// Missing keys and positions, and values that are not objects or arrays, index as null.
impl<K: Key> Index<K> for Value {
    type Output = Value;

    fn index(&self, key: K) -> &Value {
        key.find(self).unwrap_or(&NULL)
    }
}

/// Assigning to a missing key adds it; null becomes an empty object first. Indexing anything else mutably, or
/// past the end of an array, is a programming error (the gateway only does it on values it built).
impl<K: Key> IndexMut<K> for Value {
    fn index_mut(&mut self, key: K) -> &mut Value {
        key.slot(self)
    }
}

impl PartialEq<str> for Value {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Some(other)
    }
}

impl PartialEq<&str> for Value {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl Index<&str> for Map {
    type Output = Value;

    fn index(&self, key: &str) -> &Value {
        self.get(key).unwrap_or(&NULL)
    }
}

macro_rules! eq_via {
    ($($t:ty => $get:ident),*) => {$(
        impl PartialEq<$t> for Value {
            fn eq(&self, other: &$t) -> bool {
                self.$get() == Some(*other)
            }
        }
    )*};
}
eq_via!(bool => as_bool, u64 => as_u64, i64 => as_i64, f64 => as_f64);

impl PartialEq<i32> for Value {
    fn eq(&self, other: &i32) -> bool {
        self.as_i64() == Some(i64::from(*other))
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::to_string(self))
    }
}

/// Conversion into a [`Value`] by reference, which `json!` applies to the expressions it is given.
pub trait ToJson {
    fn to_json(&self) -> Value;
}

impl<T: ToJson + ?Sized> ToJson for &T {
    fn to_json(&self) -> Value {
        (**self).to_json()
    }
}

impl ToJson for Value {
    fn to_json(&self) -> Value {
        self.clone()
    }
}

impl ToJson for Map {
    fn to_json(&self) -> Value {
        Value::Object(self.clone())
    }
}

impl ToJson for Number {
    fn to_json(&self) -> Value {
        Value::Number(self.clone())
    }
}

impl ToJson for bool {
    fn to_json(&self) -> Value {
        Value::Bool(*self)
    }
}

impl ToJson for str {
    fn to_json(&self) -> Value {
        Value::String(self.to_owned())
    }
}

impl ToJson for String {
    fn to_json(&self) -> Value {
        Value::String(self.clone())
    }
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl ToJson for $t {
            fn to_json(&self) -> Value {
                Value::Number(Number(N::U(*self as u64)))
            }
        }
    )*};
}
unsigned!(u8, u16, u32, u64, usize);

macro_rules! signed {
    ($($t:ty),*) => {$(
        impl ToJson for $t {
            fn to_json(&self) -> Value {
                let i = *self as i64;
                Value::Number(Number(if i < 0 { N::I(i) } else { N::U(i as u64) }))
            }
        }
    )*};
}
signed!(i8, i16, i32, i64, isize);

/// NaN and the infinities become null, as JSON has no place for them.
impl ToJson for f64 {
    fn to_json(&self) -> Value {
        Number::from_f64(*self).map_or(Value::Null, Value::Number)
    }
}

impl ToJson for f32 {
    fn to_json(&self) -> Value {
        f64::from(*self).to_json()
    }
}

impl<T: ToJson> ToJson for Option<T> {
    fn to_json(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToJson::to_json)
    }
}

impl<T: ToJson> ToJson for [T] {
    fn to_json(&self) -> Value {
        Value::Array(self.iter().map(ToJson::to_json).collect())
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn to_json(&self) -> Value {
        self.as_slice().to_json()
    }
}

macro_rules! from {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                v.to_json()
            }
        }
    )*};
}
from!(&str, String, bool, i32, u32, u64, usize, i64, f64);

impl<T: ToJson> From<Vec<T>> for Value {
    fn from(a: Vec<T>) -> Value {
        a.to_json()
    }
}

impl From<Map> for Value {
    fn from(m: Map) -> Value {
        Value::Object(m)
    }
}
