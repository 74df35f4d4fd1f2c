//! A report line read the forgiving way, and fast: every field may be missing, null or of another
//! type than expected, and the line still gives what it has. Unknown fields are skipped without
//! building a tree, which makes a week of samples (a few hundred MiB) quick to read.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A number, or NaN for anything else.
#[derive(Debug, Clone, Copy)]
pub(super) struct Num(pub f64);

impl Default for Num {
    fn default() -> Self {
        Num(f64::NAN)
    }
}

/// An object read as `T`, or `None` for anything else.
#[derive(Debug)]
pub(super) struct Obj<T>(pub Option<T>);

impl<T> Default for Obj<T> {
    fn default() -> Self {
        Obj(None)
    }
}

impl<T> Obj<T> {
    pub fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }
}

/// An array of `T`, empty for anything else.
#[derive(Debug)]
pub(super) struct Arr<T>(pub Vec<T>);

impl<T> Default for Arr<T> {
    fn default() -> Self {
        Arr(Vec::new())
    }
}

/// A string; numbers and booleans as their text; `None` for null, objects and arrays.
#[derive(Debug, Default, Clone)]
pub(super) struct Str(pub Option<String>);

/// A list of strings, or one string taken as a list of one.
#[derive(Debug, Default)]
pub(super) struct Strs(pub Vec<String>);

fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Visitor methods that accept the listed JSON kinds and give `$none` for them, so a value of an
/// unexpected type is read past instead of failing the line.
macro_rules! ignore {
    ($none:expr; $($kind:ident)*) => { $( ignore!(@$kind $none); )* };
    (@bool $none:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($none)
        }
    };
    (@num $none:expr) => {
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($none)
        }
    };
    (@str $none:expr) => {
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($none)
        }
    };
    (@null $none:expr) => {
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok($none)
        }
    };
    (@seq $none:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            drain_seq(seq)?;
            Ok($none)
        }
    };
    (@map $none:expr) => {
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            drain_map(map)?;
            Ok($none)
        }
    };
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Num, E> {
                Ok(Num(if v.is_finite() { v } else { f64::NAN }))
            }
            ignore!(Num(f64::NAN); bool str null seq map);
        }
        d.deserialize_any(V)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(|t| Obj(Some(t)))
            }
            ignore!(Obj(None); bool num str null seq);
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Arr<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Arr<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Arr<T>, A::Error> {
                let mut out = Vec::new();
                while let Some(x) = seq.next_element::<T>()? {
                    out.push(x);
                }
                Ok(Arr(out))
            }
            ignore!(Arr(Vec::new()); bool num str null map);
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<Str, E> {
                Ok(Str(Some(v.to_string())))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Str, E> {
                Ok(Str(Some(v.to_string())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Str, E> {
                Ok(Str(Some(v.to_string())))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Str, E> {
                Ok(Str(Some(v.to_string())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Str, E> {
                Ok(Str(Some(v.to_string())))
            }
            ignore!(Str(None); null seq map);
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Strs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Strs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<Strs, E> {
                Ok(Strs(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strs, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<Item>()? {
                    out.extend(s.0);
                }
                Ok(Strs(out))
            }
            ignore!(Strs(Vec::new()); bool num null map);
        }
        d.deserialize_any(V)
    }
}

/// One element of a list of texts: a string, or an object with a `key` and a `value` (a
/// finding's evidence item) shown as `key: value`; anything else is read past.
struct Item(Option<String>);

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Item;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<Item, E> {
                Ok(Item(Some(v.to_string())))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
                let (mut key, mut value) = (None, None);
                while let Some(k) = map.next_key::<String>()? {
                    match k.as_str() {
                        "key" => key = map.next_value::<Str>()?.0,
                        "value" => value = map.next_value::<Str>()?.0,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Item(match (key, value) {
                    (Some(k), Some(v)) => Some(format!("{k}: {v}")),
                    (k, v) => k.or(v),
                }))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Item, A::Error> {
                drain_seq(seq)?;
                Ok(Item(None))
            }
            ignore!(Item(None); bool num null);
        }
        d.deserialize_any(V)
    }
}

/// The parts of a report line the page draws.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct Line {
    pub schema: Num,
    pub kind: Str,
    pub epoch_ms: Num,
    pub pid: Num,
    pub totals: Obj<Totals>,
    pub breakdown: Obj<Breakdown>,
    pub malloc: Obj<Malloc>,
    pub nmt: Obj<Nmt>,
    pub zip: Obj<Zip>,
    pub cgroup: Obj<Cgroup>,
    pub trim: Obj<Trim>,
    pub findings: Arr<Obj<Finding>>,
    pub jvm: Obj<Jvm>,
    pub sites: Obj<Sites>,
    pub native_sites: Obj<NativeSites>,
}

/// The sampled malloc call sites: the top sites, then an "other" row (`site` and `sites`, a count).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct NativeSites {
    pub status: Str,
    pub sample_bytes: Num,
    pub live_bytes: Num,
    pub growth_bytes: Num,
    pub sites: Arr<Obj<NativeSiteRow>>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct NativeSiteRow {
    pub site: Str,
    pub sites: Num,
    pub label: Str,
    pub native: Arr<Obj<NativeFrame>>,
    pub java: Strs,
    pub thread: Str,
    pub live_bytes: Num,
    pub growth_bytes: Num,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct NativeFrame {
    pub library: Str,
    pub symbol: Str,
    pub offset: Num,
}

/// The call sites part: per kind its rows (the "other" row has `sites`, a count, and no `via`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct Sites {
    pub status: Str,
    pub zip: Arr<Obj<SiteRow>>,
    pub direct: Arr<Obj<SiteRow>>,
    pub threads: Arr<Obj<SiteRow>>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct SiteRow {
    pub site: Str,
    pub via: Str,
    pub sites: Num,
    pub kind: Str,
    pub alive: Num,
    pub pending: Num,
    pub live_bytes: Num,
    pub growth_bytes: Num,
    pub growth: Num,
    pub names: Arr<Obj<NamePattern>>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct NamePattern {
    pub pattern: Str,
    pub alive: Num,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct Totals {
    pub rss: Num,
    pub pss: Num,
    pub swap: Num,
    pub anon: Num,
    pub file: Num,
    pub shmem: Num,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct Breakdown {
    pub classes: Obj<BTreeMap<String, Obj<Class>>>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct Class {
    pub rss: Num,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct Malloc {
    pub retained: Num,
    pub retained_resident: Num,
    pub in_use: Num,
    pub arena_count: Num,
    pub trimmable_max: Num,
    pub trimmable_resident: Num,
    pub mmapped: Num,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct Nmt {
    pub committed: Num,
    pub categories: Arr<Obj<NmtCategory>>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct NmtCategory {
    pub name: Str,
    pub committed: Num,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct Zip {
    pub inflaters: Obj<ZipCount>,
    pub deflaters: Obj<ZipCount>,
    pub estimated_native_bytes: Num,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct ZipCount {
    pub alive: Num,
    pub pending_cleanup: Num,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct Cgroup {
    pub limit: Num,
    pub usage: Num,
    pub oom_kills: Num,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct Trim {
    pub events: Arr<Obj<TrimEventLine>>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct TrimEventLine {
    /// The agent writes `at_ms`; `epoch_ms` is read too.
    #[serde(alias = "at_ms")]
    pub epoch_ms: Num,
    pub released: Num,
    pub rss_before: Num,
    pub rss_after: Num,
    pub duration_ns: Num,
    pub reason: Str,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct Finding {
    pub id: Str,
    pub severity: Str,
    pub title: Str,
    pub evidence: Strs,
    pub remedy: Str,
    pub since_ms: Num,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct Jvm {
    pub heap: Obj<Heap>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct Heap {
    pub used: Num,
    pub committed: Num,
    pub max: Num,
}
