//! An archive's JSON documents: capped in size, and every array and object counted
//! before anything is allocated per entry, so a million-layer manifest costs nothing.

use anyhow::{anyhow, bail, Result};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess};
use std::fmt;

use crate::image::store::blobs::MAX_JSON;

/// The most entries one array or object of an archive's JSON may hold: far more than
/// any real image has layers, history entries or labels, far fewer than a bomb needs.
pub const MAX_ENTRIES: usize = 65_536;

/// Refuse a document over `MAX_JSON` bytes before reading it (its size from a header or
/// a descriptor).
pub fn check_size(size: u64) -> Result<()> {
    if size > MAX_JSON {
        bail!("{size} bytes, more than the {MAX_JSON} allowed for a JSON document");
    }
    Ok(())
}

/// Parse an untrusted document: its size and shape checked first.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    check(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| anyhow!("not valid JSON: {e}"))
}

/// Check an untrusted document's size and shape, for a parser of its own.
pub fn check(bytes: &[u8]) -> Result<()> {
    check_size(bytes.len() as u64)?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de::DeserializeSeed::deserialize(Shape, &mut de)
        .and_then(|()| de.end())
        .map_err(|e| anyhow!("not valid JSON: {e}"))
}

/// A walk of any JSON value that keeps nothing and counts the entries of each array and
/// object (serde_json bounds the nesting depth).
#[derive(Clone, Copy)]
struct Shape;

impl<'de> DeserializeSeed<'de> for Shape {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

fn too_many<E: de::Error>(what: &str) -> E {
    E::custom(format!("an {what} of more than {MAX_ENTRIES} entries"))
}

impl<'de> de::Visitor<'de> for Shape {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        let mut n = 0;
        while a.next_element_seed(Shape)?.is_some() {
            n += 1;
            if n > MAX_ENTRIES {
                return Err(too_many("array"));
            }
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        let mut n = 0;
        while a.next_key::<IgnoredAny>()?.is_some() {
            a.next_value_seed(Shape)?;
            n += 1;
            if n > MAX_ENTRIES {
                return Err(too_many("object"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn a_huge_array_is_refused_before_it_is_built() {
        let many = format!("[{}1]", "1,".repeat(MAX_ENTRIES));
        let e = parse::<Vec<u8>>(many.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("more than 65536 entries"), "{e}");
        let nested = format!(r#"{{"a":[{{"b":[{}1]}}]}}"#, "1,".repeat(MAX_ENTRIES));
        assert!(parse::<Value>(nested.as_bytes()).is_err());
        let ok = format!("[{}1]", "1,".repeat(MAX_ENTRIES - 1));
        assert_eq!(parse::<Vec<u8>>(ok.as_bytes()).unwrap().len(), MAX_ENTRIES);
    }

    #[test]
    fn size_and_syntax() {
        assert!(check_size(MAX_JSON).is_ok());
        assert!(check_size(MAX_JSON + 1).is_err());
        assert!(parse::<Value>(b"{\"a\":1} x").is_err());
        assert_eq!(
            parse::<Value>(b"{\"a\":[1,{\"b\":null}]}").unwrap()["a"][0],
            1
        );
    }
}
