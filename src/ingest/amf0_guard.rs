//! Our AMF0 pre-check, run on every command and data message before the `rtmp`/`xflv` readers.
//!
//! The crate's `Amf0Reader` recurses once per nested object (no depth limit: 20,000 nested
//! objects overflow the stack and abort the process) and passes a strict array's count from the
//! wire to `Vec::with_capacity` (a 70-byte message can ask for terabytes and abort). Neither can
//! be caught with `catch_unwind`, so this walk proves a body safe first. It follows the crate's
//! reading rules exactly (where an object ends, what a top-level `0x09` means) with an explicit
//! stack, and refuses anything the crate would fail on half-way (truncation, bad UTF-8, unknown
//! markers): a body that passes is read by the crate along the same path, start to end.

use xflv::amf0::amf0_markers;

/// Deepest nesting of objects/arrays accepted (real encoders use 2).
pub const MAX_AMF0_DEPTH: usize = 32;

/// Why an AMF0 body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Amf0Violation {
    #[error("AMF0 values nested deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("AMF0 {what} count {count} at byte {offset} is larger than the {left} bytes left")]
    CountTooLarge {
        what: &'static str,
        count: u32,
        left: usize,
        offset: usize,
    },
    #[error("AMF0 {what} length {length} at byte {offset} is larger than the {left} bytes left")]
    LengthTooLarge {
        what: &'static str,
        length: u32,
        left: usize,
        offset: usize,
    },
    #[error("AMF0 value truncated at byte {offset}")]
    Truncated { offset: usize },
    #[error("unsupported AMF0 marker 0x{marker:02x} at byte {offset}")]
    UnknownMarker { marker: u8, offset: usize },
    #[error("AMF0 {what} at byte {offset} is not UTF-8")]
    InvalidUtf8 { what: &'static str, offset: usize },
}

/// An open container while walking: what the crate's reader would be looping over.
enum Frame {
    /// An object or ECMA array: `(key, value)*` until the 3 bytes `00 00 09`.
    Object,
    /// A strict array with this many values still to read.
    StrictArray { left: u32 },
}

/// Checks `body` as the crate's `Amf0Reader::read_all` would read it: top-level values until the
/// end or a top-level object-end marker. Returns the number of top-level values.
pub fn check_values(body: &[u8]) -> Result<usize, Amf0Violation> {
    let mut cursor = Cursor { body, pos: 0 };
    let mut stack: Vec<Frame> = Vec::new();
    let mut top_level = 0;
    loop {
        match stack.last_mut() {
            None => {
                match cursor.peek() {
                    // `read_any` answers END for an empty reader and for a 0x09 marker, and
                    // `read_all` stops there: the rest is never read.
                    None | Some(amf0_markers::OBJECT_END) => return Ok(top_level),
                    Some(_) => {}
                }
                top_level += 1;
                check_value(&mut cursor, &mut stack)?;
            }
            Some(Frame::Object) => {
                // `is_read_object_eof` peeks 3 bytes (an error if fewer are left).
                let head = cursor.peek_n(3)?;
                if head == [0, 0, amf0_markers::OBJECT_END] {
                    cursor.pos += 3;
                    stack.pop();
                    continue;
                }
                let length = u32::from(cursor.u16()?);
                cursor.utf8("object key", length)?;
                check_value(&mut cursor, &mut stack)?;
            }
            Some(Frame::StrictArray { left }) => {
                if *left == 0 {
                    stack.pop();
                    continue;
                }
                *left -= 1;
                check_value(&mut cursor, &mut stack)?;
            }
        }
    }
}

/// Checks one value starting at its marker; containers are pushed, not recursed into.
fn check_value(cursor: &mut Cursor<'_>, stack: &mut Vec<Frame>) -> Result<(), Amf0Violation> {
    let offset = cursor.pos;
    // The crate reads an empty reader as END here; we refuse it (stricter, never unsafe).
    let marker = cursor.u8()?;
    match marker {
        amf0_markers::NUMBER => cursor.skip(8),
        amf0_markers::BOOLEAN => cursor.skip(1),
        amf0_markers::STRING => {
            let length = u32::from(cursor.u16()?);
            cursor.utf8("string", length)
        }
        amf0_markers::LONG_STRING => {
            let length = cursor.u32()?;
            cursor.utf8("long string", length)
        }
        amf0_markers::NULL | amf0_markers::OBJECT_END => Ok(()),
        amf0_markers::OBJECT => push(stack, Frame::Object),
        amf0_markers::ECMA_ARRAY => {
            // The crate ignores this count, but a count above the bytes left is a lie.
            cursor.count("ECMA array", offset)?;
            push(stack, Frame::Object)
        }
        amf0_markers::STRICT_ARRAY => {
            // The crate allocates `count` values up front: bound it by the bytes left (each
            // value takes at least one byte), so allocation stays proportional to the body.
            let count = cursor.count("strict array", offset)?;
            push(stack, Frame::StrictArray { left: count })
        }
        marker => Err(Amf0Violation::UnknownMarker { marker, offset }),
    }
}

fn push(stack: &mut Vec<Frame>, frame: Frame) -> Result<(), Amf0Violation> {
    if stack.len() >= MAX_AMF0_DEPTH {
        return Err(Amf0Violation::TooDeep {
            limit: MAX_AMF0_DEPTH,
        });
    }
    stack.push(frame);
    Ok(())
}

/// A read position in the body; every read is bounds-checked.
struct Cursor<'a> {
    body: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn left(&self) -> usize {
        self.body.len() - self.pos
    }

    fn peek(&self) -> Option<u8> {
        self.body.get(self.pos).copied()
    }

    fn peek_n(&self, n: usize) -> Result<&[u8], Amf0Violation> {
        self.body
            .get(self.pos..self.pos + n)
            .ok_or(Amf0Violation::Truncated { offset: self.pos })
    }

    fn take(&mut self, n: usize) -> Result<&[u8], Amf0Violation> {
        let start = self.pos;
        let bytes = self
            .body
            .get(start..start.saturating_add(n))
            .ok_or(Amf0Violation::Truncated { offset: start })?;
        self.pos += n;
        Ok(bytes)
    }

    fn skip(&mut self, n: usize) -> Result<(), Amf0Violation> {
        self.take(n).map(|_| ())
    }

    fn u8(&mut self) -> Result<u8, Amf0Violation> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Amf0Violation> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Amf0Violation> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A 32-bit element count that must not exceed the bytes left after it.
    fn count(&mut self, what: &'static str, offset: usize) -> Result<u32, Amf0Violation> {
        let count = self.u32()?;
        if count as usize > self.left() {
            return Err(Amf0Violation::CountTooLarge {
                what,
                count,
                left: self.left(),
                offset,
            });
        }
        Ok(count)
    }

    /// `length` bytes of UTF-8 (the crate fails on anything else, mid-value).
    fn utf8(&mut self, what: &'static str, length: u32) -> Result<(), Amf0Violation> {
        let offset = self.pos;
        if length as usize > self.left() {
            return Err(Amf0Violation::LengthTooLarge {
                what,
                length,
                left: self.left(),
                offset,
            });
        }
        let bytes = self.take(length as usize)?;
        std::str::from_utf8(bytes).map_err(|_| Amf0Violation::InvalidUtf8 { what, offset })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use bytesio::bytes_reader::BytesReader;
    use proptest::prelude::*;
    use xflv::amf0::amf0_reader::Amf0Reader;

    fn string(s: &str) -> Vec<u8> {
        let mut v = vec![amf0_markers::STRING];
        v.extend_from_slice(&(s.len() as u16).to_be_bytes());
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn key(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn number(n: f64) -> Vec<u8> {
        let mut v = vec![amf0_markers::NUMBER];
        v.extend_from_slice(&n.to_be_bytes());
        v
    }

    /// `connect` as OBS sends it (trimmed).
    fn obs_connect() -> Vec<u8> {
        let mut v = string("connect");
        v.extend(number(1.0));
        v.push(amf0_markers::OBJECT);
        v.extend(key("app"));
        v.extend(string("live"));
        v.extend(key("flashVer"));
        v.extend(string("FMLE/3.0 (compatible; FMSc/1.0)"));
        v.extend(key("fpad"));
        v.extend([amf0_markers::BOOLEAN, 0]);
        v.extend([0, 0, 9]);
        v
    }

    /// What the crate's reader makes of the body, panics caught.
    fn crate_reads(body: &[u8]) -> Option<usize> {
        let body = BytesMut::from(body);
        std::panic::catch_unwind(move || {
            Amf0Reader::new(BytesReader::new(body))
                .read_all()
                .ok()
                .map(|v| v.len())
        })
        .ok()
        .flatten()
    }

    #[test]
    fn accepts_a_real_connect_and_agrees_with_the_crate() {
        let body = obs_connect();
        assert_eq!(check_values(&body), Ok(3));
        assert_eq!(crate_reads(&body), Some(3));
    }

    #[test]
    fn a_top_level_object_end_stops_like_the_crate() {
        let mut body = string("x");
        body.push(amf0_markers::OBJECT_END);
        body.extend([0xff, 0xff]); // never read
        assert_eq!(check_values(&body), Ok(1));
        assert_eq!(crate_reads(&body), Some(1));
        assert_eq!(check_values(&[]), Ok(0));
    }

    #[test]
    fn refuses_a_strict_array_count_larger_than_the_body() {
        let mut body = string("connect");
        body.extend(number(1.0));
        body.push(amf0_markers::STRICT_ARRAY);
        body.extend(u32::MAX.to_be_bytes());
        body.extend(number(1.0));
        assert!(matches!(
            check_values(&body),
            Err(Amf0Violation::CountTooLarge {
                what: "strict array",
                count: u32::MAX,
                ..
            })
        ));
    }

    #[test]
    fn refuses_an_ecma_array_count_larger_than_the_body() {
        let mut body = vec![amf0_markers::ECMA_ARRAY];
        body.extend(0x7fff_ffffu32.to_be_bytes());
        body.extend([0, 0, 9]);
        assert!(matches!(
            check_values(&body),
            Err(Amf0Violation::CountTooLarge {
                what: "ECMA array",
                ..
            })
        ));
        // A count of 0 with entries is what some servers write; the crate ignores it.
        let mut body = vec![amf0_markers::ECMA_ARRAY, 0, 0, 0, 0];
        body.extend(key("a"));
        body.extend(number(2.0));
        body.extend([0, 0, 9]);
        assert_eq!(check_values(&body), Ok(1));
    }

    fn nested_objects(depth: usize) -> Vec<u8> {
        let mut body = vec![amf0_markers::OBJECT];
        for _ in 1..depth {
            body.extend([0, 0, amf0_markers::OBJECT]); // key "" then an object value
        }
        for _ in 0..depth {
            body.extend([0, 0, 9]);
        }
        body
    }

    #[test]
    fn nesting_is_limited() {
        assert_eq!(check_values(&nested_objects(MAX_AMF0_DEPTH)), Ok(1));
        assert_eq!(crate_reads(&nested_objects(MAX_AMF0_DEPTH)), Some(1));
        assert_eq!(
            check_values(&nested_objects(MAX_AMF0_DEPTH + 1)),
            Err(Amf0Violation::TooDeep {
                limit: MAX_AMF0_DEPTH
            })
        );
        // 20,000 levels: refused without recursion.
        assert!(matches!(
            check_values(&nested_objects(20_000)),
            Err(Amf0Violation::TooDeep { .. })
        ));
    }

    #[test]
    fn refuses_what_the_crate_would_fail_on_half_way() {
        // Invalid UTF-8 in a key: the crate would fail inside the object and then read on from
        // the middle of it, misaligned.
        let mut body = vec![amf0_markers::OBJECT, 0, 1, 0xff];
        body.extend(number(1.0));
        body.extend([0, 0, 9]);
        assert!(matches!(
            check_values(&body),
            Err(Amf0Violation::InvalidUtf8 { .. })
        ));
        assert!(matches!(
            check_values(&[amf0_markers::NUMBER, 1, 2]),
            Err(Amf0Violation::Truncated { offset: 1 })
        ));
        assert!(matches!(
            check_values(&[0x06]),
            Err(Amf0Violation::UnknownMarker { marker: 6, .. })
        ));
        assert!(matches!(
            check_values(&[amf0_markers::LONG_STRING, 0xff, 0xff, 0xff, 0xff, b'a']),
            Err(Amf0Violation::LengthTooLarge { .. })
        ));
        // An object without its end marker.
        assert!(matches!(
            check_values(&[amf0_markers::OBJECT, 0, 1, b'a', amf0_markers::NULL]),
            Err(Amf0Violation::Truncated { .. })
        ));
    }

    /// A small AMF0 tree for property tests.
    #[derive(Debug, Clone)]
    enum Value {
        Number(f64),
        Bool(bool),
        Str(String),
        Null,
        Object(Vec<(String, Value)>),
        Ecma(Vec<(String, Value)>),
        Array(Vec<Value>),
    }

    fn encode(value: &Value, out: &mut Vec<u8>) {
        match value {
            Value::Number(n) => out.extend(number(*n)),
            Value::Bool(b) => out.extend([amf0_markers::BOOLEAN, u8::from(*b)]),
            Value::Str(s) => out.extend(string(s)),
            Value::Null => out.push(amf0_markers::NULL),
            Value::Object(props) | Value::Ecma(props) => {
                if let Value::Ecma(_) = value {
                    out.push(amf0_markers::ECMA_ARRAY);
                    out.extend((props.len() as u32).to_be_bytes());
                } else {
                    out.push(amf0_markers::OBJECT);
                }
                for (k, v) in props {
                    out.extend(key(k));
                    encode(v, out);
                }
                out.extend([0, 0, 9]);
            }
            Value::Array(items) => {
                out.push(amf0_markers::STRICT_ARRAY);
                out.extend((items.len() as u32).to_be_bytes());
                for v in items {
                    encode(v, out);
                }
            }
        }
    }

    fn value_strategy() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<f64>().prop_map(Value::Number),
            any::<bool>().prop_map(Value::Bool),
            "[a-z]{1,6}".prop_map(Value::Str),
            Just(Value::Null),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(("[a-z]{1,4}", inner.clone()), 0..4).prop_map(Value::Object),
                prop::collection::vec(("[a-z]{1,4}", inner.clone()), 0..4).prop_map(Value::Ecma),
                prop::collection::vec(inner, 0..4).prop_map(Value::Array),
            ]
        })
    }

    proptest! {
        /// Anything the guard passes, the crate reads to the end without error or panic, and
        /// sees the same number of top-level values.
        #[test]
        fn what_passes_the_guard_the_crate_reads(
            values in prop::collection::vec(value_strategy(), 0..4),
            flip in any::<(usize, u8)>(),
            random in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut body = Vec::new();
            for v in &values {
                encode(v, &mut body);
            }
            prop_assert_eq!(check_values(&body), Ok(values.len()));
            prop_assert_eq!(crate_reads(&body), Some(values.len()));

            let mut mutated = body.clone();
            if !mutated.is_empty() {
                let i = flip.0 % mutated.len();
                mutated[i] = flip.1;
            }
            for candidate in [&mutated, &random] {
                if let Ok(n) = check_values(candidate) {
                    prop_assert_eq!(crate_reads(candidate), Some(n));
                }
            }
        }
    }
}
