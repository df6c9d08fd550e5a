//! The gateway's JSON: a value tree, a parser and a writer, with the small API the dialects and providers use.
//!
//! It replaces a general serialization framework whose generic code was the largest part of the wasm (paid in
//! every cold start and in the upload size). Objects keep their keys in order in a vector: the objects a
//! gateway sees are small, and a vector is cheaper to build, search and free than a tree. Duplicate keys are
//! resolved when parsing (the last one wins, or an error for callers that must reject them).

mod parse;
mod value;
mod write;

pub use parse::{from_slice, from_slice_unique, from_str, validate, Error};
pub use value::{Map, Number, ToJson, Value};
pub use write::{to_string, to_string_sorted, to_vec, write_value, Text};

/// Builds a [`Value`] from JSON-like syntax: `json!({"a": [1, x, null], "b": {"c": y}})`. Other values are
/// converted by reference with [`ToJson`], so a field can be named without moving it.
#[macro_export]
macro_rules! __json {
    (null) => { $crate::json::Value::Null };
    ([ $($tt:tt)* ]) => { $crate::json::Value::Array($crate::__json!(@array [] $($tt)*)) };
    ({ $($tt:tt)* }) => {
        $crate::json::Value::Object({
            #[allow(unused_mut)]
            let mut m = $crate::json::Map::new();
            $crate::__json!(@object m $($tt)*);
            m
        })
    };

    // Arrays: each element is `null`, a nested array or object, or an expression up to the next comma.
    (@array [$($done:expr,)*]) => { vec![$($done,)*] };
    (@array [$($done:expr,)*] null $(, $($rest:tt)*)?) => {
        $crate::__json!(@array [$($done,)* $crate::json::Value::Null,] $($($rest)*)?)
    };
    (@array [$($done:expr,)*] [$($a:tt)*] $(, $($rest:tt)*)?) => {
        $crate::__json!(@array [$($done,)* $crate::__json!([$($a)*]),] $($($rest)*)?)
    };
    (@array [$($done:expr,)*] {$($o:tt)*} $(, $($rest:tt)*)?) => {
        $crate::__json!(@array [$($done,)* $crate::__json!({$($o)*}),] $($($rest)*)?)
    };
    (@array [$($done:expr,)*] $next:expr, $($rest:tt)*) => {
        $crate::__json!(@array [$($done,)* $crate::__json!($next),] $($rest)*)
    };
    (@array [$($done:expr,)*] $last:expr) => {
        $crate::__json!(@array [$($done,)* $crate::__json!($last),])
    };

    // Objects: `"key": value` pairs, the key a literal or any expression before the colon.
    (@object $m:ident) => {};
    (@object $m:ident $k:literal : $($rest:tt)*) => { $crate::__json!(@value $m ($k) $($rest)*) };
    (@object $m:ident ($k:expr) : $($rest:tt)*) => { $crate::__json!(@value $m ($k) $($rest)*) };
    (@object $m:ident $($rest:tt)+) => { $crate::__json!(@key $m () $($rest)+) };
    (@key $m:ident ($($k:tt)+) : $($rest:tt)*) => { $crate::__json!(@value $m ($($k)+) $($rest)*) };
    (@key $m:ident ($($k:tt)*) $t:tt $($rest:tt)*) => { $crate::__json!(@key $m ($($k)* $t) $($rest)*) };
    (@value $m:ident ($k:expr) null $(, $($rest:tt)*)?) => {
        $m.insert(::std::string::String::from($k), $crate::json::Value::Null);
        $crate::__json!(@object $m $($($rest)*)?);
    };
    (@value $m:ident ($k:expr) [$($a:tt)*] $(, $($rest:tt)*)?) => {
        $m.insert(::std::string::String::from($k), $crate::__json!([$($a)*]));
        $crate::__json!(@object $m $($($rest)*)?);
    };
    (@value $m:ident ($k:expr) {$($o:tt)*} $(, $($rest:tt)*)?) => {
        $m.insert(::std::string::String::from($k), $crate::__json!({$($o)*}));
        $crate::__json!(@object $m $($($rest)*)?);
    };
    (@value $m:ident ($k:expr) $v:expr, $($rest:tt)*) => {
        $m.insert(::std::string::String::from($k), $crate::__json!($v));
        $crate::__json!(@object $m $($rest)*);
    };
    (@value $m:ident ($k:expr) $v:expr) => {
        $m.insert(::std::string::String::from($k), $crate::__json!($v));
    };

    ($e:expr) => { $crate::json::ToJson::to_json(&$e) };
}

#[doc(inline)]
pub use crate::__json as json;

#[cfg(test)]
mod tests;
