//! AMF0 values: the encoding of RTMP command and data messages.
//!
//! The decoder reads from a byte slice and never trusts a length read off the wire:
//! every string length is checked against the remaining input before anything is
//! allocated, strict-array counts are checked against what the remaining input could
//! hold, and nesting is capped at [`MAX_DEPTH`] so hostile input cannot exhaust the
//! stack. AMF3 (the 0x11 marker) is refused with a typed error.
//!
//! Decoding amplifies: a one-byte `null` becomes a [`Value`] of tens of bytes, so a
//! message of many tiny values could cost far more memory than its length. An
//! [`AmfBudget`] caps the number of values one message may decode to; every value is
//! counted before it is built, and a strict array's declared count is checked against
//! what is left before anything is reserved for it.
//!
//! This module must never allocate from a declared length before checking it.

use bytes::{BufMut, BytesMut};

use crate::error::AmfError;

/// Deepest nesting of objects and arrays the decoder accepts.
pub const MAX_DEPTH: usize = 32;

/// Values one message may decode to by default: an `onMetaData` from a real encoder
/// holds a few dozen, a command a handful.
pub const DEFAULT_MAX_VALUES: usize = 4096;

/// How many more values the decoding of one message may produce. Share one budget
/// across every [`decode_with`] call for the same message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmfBudget {
    limit: usize,
    left: usize,
}

impl AmfBudget {
    pub fn new(max_values: usize) -> Self {
        Self {
            limit: max_values,
            left: max_values,
        }
    }

    /// Values still allowed.
    pub fn left(&self) -> usize {
        self.left
    }

    fn spend(&mut self, n: usize) -> Result<(), AmfError> {
        self.left = self
            .left
            .checked_sub(n)
            .ok_or(AmfError::TooManyValues { limit: self.limit })?;
        Ok(())
    }

    fn check(&self, n: usize) -> Result<(), AmfError> {
        if n > self.left {
            return Err(AmfError::TooManyValues { limit: self.limit });
        }
        Ok(())
    }
}

impl Default for AmfBudget {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_VALUES)
    }
}

mod marker {
    pub const NUMBER: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const OBJECT: u8 = 0x03;
    pub const MOVIECLIP: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const UNDEFINED: u8 = 0x06;
    pub const REFERENCE: u8 = 0x07;
    pub const ECMA_ARRAY: u8 = 0x08;
    pub const OBJECT_END: u8 = 0x09;
    pub const STRICT_ARRAY: u8 = 0x0A;
    pub const DATE: u8 = 0x0B;
    pub const LONG_STRING: u8 = 0x0C;
    pub const UNSUPPORTED: u8 = 0x0D;
    pub const RECORDSET: u8 = 0x0E;
    pub const XML_DOCUMENT: u8 = 0x0F;
    pub const TYPED_OBJECT: u8 = 0x10;
    pub const AVMPLUS: u8 = 0x11;
}

/// One AMF0 value.
///
/// Strings are decoded lossily (invalid UTF-8 becomes U+FFFD) because stream names and
/// metadata from real encoders are not always valid UTF-8, and refusing the connection
/// over a metadata string would be worse than a replacement character.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Boolean(bool),
    /// A string. Encoded with the String marker when it fits 65535 bytes, else as a long string.
    String(String),
    /// Anonymous object: properties in wire order.
    Object(Vec<(String, Value)>),
    Null,
    Undefined,
    /// Associative array (the usual container of `onMetaData`): properties in wire order.
    EcmaArray(Vec<(String, Value)>),
    StrictArray(Vec<Value>),
    /// Milliseconds since the Unix epoch, and the time zone field (reserved, should be 0).
    Date {
        millis: f64,
        time_zone: i16,
    },
    LongString(String),
}

impl Value {
    /// The string inside `String` or `LongString`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::LongString(s) => Some(s),
            _ => None,
        }
    }

    /// The number inside `Number`.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The properties of an `Object` or `EcmaArray`.
    pub fn properties(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(p) | Value::EcmaArray(p) => Some(p),
            _ => None,
        }
    }

    /// The first property called `key` of an `Object` or `EcmaArray`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.properties()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Shorthand for an `Object` built from `(&str, Value)` pairs.
    pub fn object<'a>(props: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        Value::Object(props.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    /// Shorthand for a `String` value.
    pub fn string(s: &str) -> Value {
        Value::String(s.to_owned())
    }

    /// Appends the AMF0 encoding of this value to `out`.
    ///
    /// Encoding cannot fail: a `String` longer than 65535 bytes is written as a long
    /// string, and a property key longer than 65535 bytes (which no decoded value can
    /// hold) is cut at the last character boundary that fits. Nesting is not limited
    /// here; values built by the decoder are at most [`MAX_DEPTH`] deep.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Value::Number(n) => {
                out.put_u8(marker::NUMBER);
                out.put_f64(*n);
            }
            Value::Boolean(b) => {
                out.put_u8(marker::BOOLEAN);
                out.put_u8(u8::from(*b));
            }
            Value::String(s) => match u16::try_from(s.len()) {
                Ok(len) => {
                    out.put_u8(marker::STRING);
                    out.put_u16(len);
                    out.put_slice(s.as_bytes());
                }
                Err(_) => encode_long_string(s, out),
            },
            Value::Object(props) => {
                out.put_u8(marker::OBJECT);
                encode_properties(props, out);
            }
            Value::Null => out.put_u8(marker::NULL),
            Value::Undefined => out.put_u8(marker::UNDEFINED),
            Value::EcmaArray(props) => {
                out.put_u8(marker::ECMA_ARRAY);
                out.put_u32(u32::try_from(props.len()).unwrap_or(u32::MAX));
                encode_properties(props, out);
            }
            Value::StrictArray(items) => {
                out.put_u8(marker::STRICT_ARRAY);
                // More than u32::MAX items cannot be held in memory anyway; clamp the
                // count and write that many so the encoding stays self-consistent.
                let count = u32::try_from(items.len()).unwrap_or(u32::MAX);
                out.put_u32(count);
                for item in items.iter().take(count as usize) {
                    item.encode(out);
                }
            }
            Value::Date { millis, time_zone } => {
                out.put_u8(marker::DATE);
                out.put_f64(*millis);
                out.put_i16(*time_zone);
            }
            Value::LongString(s) => encode_long_string(s, out),
        }
    }

    /// The AMF0 encoding of this value as a new buffer.
    pub fn to_bytes(&self) -> BytesMut {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out
    }
}

fn encode_long_string(s: &str, out: &mut BytesMut) {
    out.put_u8(marker::LONG_STRING);
    // A string over 4 GiB cannot arrive here from the network (message cap); cut it
    // rather than write a length that lies.
    let bytes = truncate_utf8(s, u32::MAX as usize);
    out.put_u32(bytes.len() as u32);
    out.put_slice(bytes);
}

fn encode_properties(props: &[(String, Value)], out: &mut BytesMut) {
    for (key, value) in props {
        let key = truncate_utf8(key, u16::MAX as usize);
        out.put_u16(key.len() as u16);
        out.put_slice(key);
        value.encode(out);
    }
    out.put_u16(0);
    out.put_u8(marker::OBJECT_END);
}

fn truncate_utf8(s: &str, max: usize) -> &[u8] {
    if s.len() <= max {
        return s.as_bytes();
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.as_bytes().get(..end).unwrap_or_default()
}

/// Encodes a sequence of values back to back, as command and data messages carry them.
pub fn encode_all(values: &[Value], out: &mut BytesMut) {
    for v in values {
        v.encode(out);
    }
}

/// Decodes one value from the front of `input`, advancing it past the value, with a
/// budget of its own ([`DEFAULT_MAX_VALUES`]).
pub fn decode(input: &mut &[u8]) -> Result<Value, AmfError> {
    decode_with(input, &mut AmfBudget::default())
}

/// Decodes one value, spending from `budget` (shared by the values of one message).
pub fn decode_with(input: &mut &[u8], budget: &mut AmfBudget) -> Result<Value, AmfError> {
    Reader { input, budget }.value(0)
}

/// Decodes values until `input` is exhausted ([`DEFAULT_MAX_VALUES`] in all).
pub fn decode_all(input: &[u8]) -> Result<Vec<Value>, AmfError> {
    decode_all_with(input, &mut AmfBudget::default())
}

/// Decodes values until `input` is exhausted, spending from `budget`.
pub fn decode_all_with(mut input: &[u8], budget: &mut AmfBudget) -> Result<Vec<Value>, AmfError> {
    let mut values = Vec::new();
    while !input.is_empty() {
        // The list itself grows per value: charge before pushing.
        budget.check(1)?;
        values.push(decode_with(&mut input, budget)?);
    }
    Ok(values)
}

struct Reader<'a, 'b> {
    input: &'b mut &'a [u8],
    budget: &'b mut AmfBudget,
}

impl<'a> Reader<'a, '_> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], AmfError> {
        let available = self.input.len();
        if n > available {
            return Err(AmfError::Truncated {
                needed: n - available,
                available,
            });
        }
        let (head, tail) = self.input.split_at(n);
        *self.input = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, AmfError> {
        Ok(self.array::<1>()?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], AmfError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn f64(&mut self) -> Result<f64, AmfError> {
        Ok(f64::from_be_bytes(self.array()?))
    }

    fn string_of_len(&mut self, declared: u64) -> Result<String, AmfError> {
        let available = self.input.len();
        let len = usize::try_from(declared)
            .ok()
            .filter(|&l| l <= available)
            .ok_or(AmfError::StringTooLong {
                declared,
                available,
            })?;
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    fn short_string(&mut self) -> Result<String, AmfError> {
        let len = u16::from_be_bytes(self.array()?);
        self.string_of_len(u64::from(len))
    }

    fn long_string(&mut self) -> Result<String, AmfError> {
        let len = u32::from_be_bytes(self.array()?);
        self.string_of_len(u64::from(len))
    }

    fn value(&mut self, depth: usize) -> Result<Value, AmfError> {
        let m = self.u8()?;
        self.budget.spend(1)?;
        match m {
            marker::NUMBER => Ok(Value::Number(self.f64()?)),
            marker::BOOLEAN => Ok(Value::Boolean(self.u8()? != 0)),
            marker::STRING => Ok(Value::String(self.short_string()?)),
            marker::OBJECT => Ok(Value::Object(self.properties(depth + 1)?)),
            marker::NULL => Ok(Value::Null),
            marker::UNDEFINED => Ok(Value::Undefined),
            marker::ECMA_ARRAY => {
                // The count is only a hint (encoders get it wrong); the end marker rules.
                let _count = self.array::<4>()?;
                Ok(Value::EcmaArray(self.properties(depth + 1)?))
            }
            marker::OBJECT_END => Err(AmfError::UnexpectedObjectEnd),
            marker::STRICT_ARRAY => {
                let depth = Self::deeper(depth + 1)?;
                let declared = u32::from_be_bytes(self.array()?);
                // Every element takes at least one byte, so a count above the remaining
                // length is a lie; refuse before reserving anything.
                let available = self.input.len();
                if declared as usize > available {
                    return Err(AmfError::ArrayTooLong {
                        declared,
                        available,
                    });
                }
                // Each element spends one value: a count above what is left is refused
                // before the vector is reserved.
                self.budget.check(declared as usize)?;
                let mut items = Vec::with_capacity(declared as usize);
                for _ in 0..declared {
                    items.push(self.value(depth)?);
                }
                Ok(Value::StrictArray(items))
            }
            marker::DATE => {
                let millis = self.f64()?;
                let time_zone = i16::from_be_bytes(self.array()?);
                Ok(Value::Date { millis, time_zone })
            }
            marker::LONG_STRING => Ok(Value::LongString(self.long_string()?)),
            marker::AVMPLUS => Err(AmfError::Amf3NotSupported),
            marker::MOVIECLIP
            | marker::REFERENCE
            | marker::UNSUPPORTED
            | marker::RECORDSET
            | marker::XML_DOCUMENT
            | marker::TYPED_OBJECT => Err(AmfError::UnsupportedMarker(m)),
            other => Err(AmfError::UnknownMarker(other)),
        }
    }

    fn deeper(depth: usize) -> Result<usize, AmfError> {
        if depth > MAX_DEPTH {
            Err(AmfError::DepthExceeded { limit: MAX_DEPTH })
        } else {
            Ok(depth)
        }
    }

    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Value)>, AmfError> {
        let depth = Self::deeper(depth)?;
        let mut props = Vec::new();
        loop {
            let key = self.short_string()?;
            if key.is_empty() && self.input.first() == Some(&marker::OBJECT_END) {
                self.take(1)?;
                return Ok(props);
            }
            let value = self.value(depth)?;
            props.push((key, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_budget_is_checked_before_building() {
        // A strict array of 5000 nulls: 5005 bytes of input, 5001 values.
        let mut arr = vec![marker::STRICT_ARRAY];
        arr.extend_from_slice(&5000u32.to_be_bytes());
        arr.extend(std::iter::repeat_n(marker::NULL, 5000));
        let mut input = &arr[..];
        let mut budget = AmfBudget::new(1000);
        // Refused at the declared count, before 5000 slots are reserved.
        assert_eq!(
            decode_with(&mut input, &mut budget),
            Err(AmfError::TooManyValues { limit: 1000 })
        );
        assert_eq!(budget.left(), 999);
        assert!(decode_with(&mut &arr[..], &mut AmfBudget::new(5001)).is_ok());

        // An object of many tiny properties: spent one by one.
        let mut obj = vec![marker::OBJECT];
        for _ in 0..3000 {
            obj.extend_from_slice(&[0, 1, b'k', marker::NULL]);
        }
        obj.extend_from_slice(&[0, 0, marker::OBJECT_END]);
        let err = decode_all_with(&obj, &mut AmfBudget::new(2000)).unwrap_err();
        assert_eq!(err, AmfError::TooManyValues { limit: 2000 });
        assert!(err.to_string().contains("2000 values"), "{err}");

        // One budget across the values of one message.
        let many: Vec<u8> = std::iter::repeat_n(marker::NULL, 10).collect();
        assert!(decode_all_with(&many, &mut AmfBudget::new(10)).is_ok());
        assert!(decode_all_with(&many, &mut AmfBudget::new(9)).is_err());
    }

    fn enc(v: &Value) -> Vec<u8> {
        v.to_bytes().to_vec()
    }

    fn dec(bytes: &[u8]) -> Value {
        let mut input = bytes;
        let v = decode(&mut input).unwrap();
        assert!(input.is_empty(), "trailing bytes after {v:?}");
        v
    }

    fn both_ways(v: Value, bytes: &[u8]) {
        assert_eq!(enc(&v), bytes, "encoding of {v:?}");
        assert_eq!(dec(bytes), v);
    }

    #[test]
    fn number_vector() {
        // 1.0 as an IEEE 754 double is 3F F0 00 00 00 00 00 00.
        both_ways(Value::Number(1.0), &[0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0]);
        both_ways(Value::Number(-2.5), &[0x00, 0xC0, 0x04, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn string_boolean_null_undefined_vectors() {
        both_ways(Value::string("connect"), b"\x02\x00\x07connect");
        both_ways(Value::Boolean(true), &[0x01, 0x01]);
        both_ways(Value::Boolean(false), &[0x01, 0x00]);
        both_ways(Value::Null, &[0x05]);
        both_ways(Value::Undefined, &[0x06]);
        both_ways(Value::LongString("ab".into()), b"\x0c\x00\x00\x00\x02ab");
    }

    #[test]
    fn object_vector_with_end_marker() {
        let v = Value::object([("app", Value::string("live")), ("n", Value::Number(0.0))]);
        let bytes = b"\x03\x00\x03app\x02\x00\x04live\x00\x01n\x00\0\0\0\0\0\0\0\0\x00\x00\x09";
        both_ways(v, bytes);
    }

    #[test]
    fn ecma_array_vector() {
        let v = Value::EcmaArray(vec![("width".into(), Value::Number(320.0))]);
        // 320.0 = 0x4074000000000000
        let bytes = b"\x08\x00\x00\x00\x01\x00\x05width\x00\x40\x74\0\0\0\0\0\0\x00\x00\x09";
        both_ways(v, bytes);
        // A wrong count hint does not matter: the end marker ends the array.
        let lying = b"\x08\x00\x00\x00\x07\x00\x05width\x00\x40\x74\0\0\0\0\0\0\x00\x00\x09";
        assert_eq!(
            dec(lying),
            Value::EcmaArray(vec![("width".into(), Value::Number(320.0))])
        );
    }

    #[test]
    fn strict_array_vector() {
        let v = Value::StrictArray(vec![Value::Null, Value::Boolean(true)]);
        both_ways(v, b"\x0a\x00\x00\x00\x02\x05\x01\x01");
    }

    #[test]
    fn date_vector() {
        both_ways(
            Value::Date {
                millis: 1.0,
                time_zone: 0,
            },
            &[0x0B, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0, 0, 0],
        );
    }

    #[test]
    fn empty_key_property_that_is_not_the_end() {
        // Key "" followed by a Null value (not the end marker) is a property.
        let bytes = b"\x03\x00\x00\x05\x00\x00\x09";
        assert_eq!(
            dec(bytes),
            Value::Object(vec![(String::new(), Value::Null)])
        );
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let mut bytes = [marker::STRICT_ARRAY, 0, 0, 0, 1].repeat(1000);
        bytes.push(marker::NULL);
        let mut input = &bytes[..];
        assert_eq!(
            decode(&mut input),
            Err(AmfError::DepthExceeded { limit: MAX_DEPTH })
        );
        let mut objects = b"\x03\x00\x01a".repeat(1000);
        objects.push(marker::NULL);
        let mut input = &objects[..];
        assert_eq!(
            decode(&mut input),
            Err(AmfError::DepthExceeded { limit: MAX_DEPTH })
        );
    }

    #[test]
    fn nesting_at_the_limit_is_fine() {
        let mut bytes = [marker::STRICT_ARRAY, 0, 0, 0, 1].repeat(MAX_DEPTH);
        bytes.push(marker::NULL);
        let mut input = &bytes[..];
        assert!(decode(&mut input).is_ok());
        let mut deeper = [marker::STRICT_ARRAY, 0, 0, 0, 1].repeat(MAX_DEPTH + 1);
        deeper.push(marker::NULL);
        let mut input = &deeper[..];
        assert!(decode(&mut input).is_err());
    }

    #[test]
    fn long_string_claiming_one_gib_in_20_bytes_is_refused() {
        let mut bytes = vec![marker::LONG_STRING, 0x40, 0x00, 0x00, 0x00];
        bytes.resize(20, b'x');
        let mut input = &bytes[..];
        assert_eq!(
            decode(&mut input),
            Err(AmfError::StringTooLong {
                declared: 1 << 30,
                available: 15
            })
        );
    }

    #[test]
    fn strict_array_with_huge_count_is_refused() {
        let bytes = [marker::STRICT_ARRAY, 0xFF, 0xFF, 0xFF, 0xFF, 0x05];
        let mut input = &bytes[..];
        assert_eq!(
            decode(&mut input),
            Err(AmfError::ArrayTooLong {
                declared: u32::MAX,
                available: 1
            })
        );
    }

    #[test]
    fn amf3_switch_and_bad_markers() {
        let mut input: &[u8] = &[0x11, 0x01];
        assert_eq!(decode(&mut input), Err(AmfError::Amf3NotSupported));
        let mut input: &[u8] = &[0x07, 0x00, 0x01];
        assert_eq!(decode(&mut input), Err(AmfError::UnsupportedMarker(0x07)));
        let mut input: &[u8] = &[0x42];
        assert_eq!(decode(&mut input), Err(AmfError::UnknownMarker(0x42)));
        let mut input: &[u8] = &[0x09];
        assert_eq!(decode(&mut input), Err(AmfError::UnexpectedObjectEnd));
    }

    #[test]
    fn truncated_input() {
        let mut input: &[u8] = &[0x00, 0x3F, 0xF0];
        assert_eq!(
            decode(&mut input),
            Err(AmfError::Truncated {
                needed: 6,
                available: 2
            })
        );
        let mut input: &[u8] = b"\x03\x00\x03app\x02\x00\x04live";
        assert!(matches!(
            decode(&mut input),
            Err(AmfError::Truncated { .. })
        ));
    }

    #[test]
    fn long_rust_string_is_encoded_as_long_string() {
        let s = "a".repeat(70_000);
        let bytes = enc(&Value::String(s.clone()));
        assert_eq!(bytes[0], marker::LONG_STRING);
        assert_eq!(dec(&bytes), Value::LongString(s));
    }

    #[test]
    fn decode_all_reads_a_command() {
        let mut out = BytesMut::new();
        let values = vec![
            Value::string("_result"),
            Value::Number(4.0),
            Value::Null,
            Value::Number(1.0),
        ];
        encode_all(&values, &mut out);
        assert_eq!(decode_all(&out).unwrap(), values);
    }
}
