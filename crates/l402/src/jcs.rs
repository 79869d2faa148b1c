//! The JSON Canonicalization Scheme (RFC 8785): one byte sequence for each JSON value.
//!
//! MPP's `request` auth-param is the base64url of the canonical form of a JSON object, and the
//! challenge id is an HMAC over that string, so two implementations agree on a challenge only if
//! they agree on these bytes. The rules:
//!
//! - object members sorted by the UTF-16 code units of their names (not by code point: a name
//!   above U+FFFF sorts before U+E000);
//! - no whitespace;
//! - strings escaped as ECMAScript's `JSON.stringify` escapes them: `"` and `\`, the controls
//!   below U+0020 (`\b \f \n \r \t` as such, the others as lowercase `\u00xx`), nothing else;
//! - numbers as IEEE 754 doubles written by ECMAScript's `Number::toString`: the shortest digits
//!   that read back to the same double, positional from 1e-6 up to below 1e21, exponential
//!   (`1e-7`, `1e+21`) outside; both zeros as `0`.
//!
//! [`canonicalize`] reads JSON text with a parser of its own: strict RFC 8259, numbers parsed
//! with correct rounding, and refusing what RFC 8785 cannot represent (duplicate member names,
//! unpaired surrogates, numbers beyond the double range). [`to_canonical_string`] writes a
//! [`serde_json::Value`] built in code.

use serde_json::{Map, Number, Value};

/// How deeply arrays and objects may nest in text [`canonicalize`] reads.
pub const MAX_DEPTH: usize = 64;

/// Why JSON text has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JcsError {
    /// The text is not JSON (RFC 8259).
    #[error("not JSON: {what} at byte {offset}")]
    Syntax {
        /// What was expected or found.
        what: &'static str,
        /// Where, in bytes from the start.
        offset: usize,
    },
    /// An object names a member twice: readers disagree on which one counts.
    #[error("an object has the member {0:?} twice")]
    DuplicateName(String),
    /// A `\u` escape is half of a surrogate pair without the other half.
    #[error("a \\u escape is an unpaired surrogate at byte {0}")]
    LoneSurrogate(usize),
    /// A number is beyond the range of a double.
    #[error("the number at byte {0} is beyond the range of a double")]
    NumberOutOfRange(usize),
    /// Arrays and objects nest deeper than [`MAX_DEPTH`].
    #[error("arrays and objects nest deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// The canonical form of JSON text.
pub fn canonicalize(text: &str) -> Result<String, JcsError> {
    let value = parse(text)?;
    let mut out = String::with_capacity(text.len());
    write_value(&mut out, &value);
    Ok(out)
}

/// The canonical form of a value. Numbers that are not finite doubles cannot be in a
/// [`serde_json::Value`], so this cannot fail.
pub fn to_canonical_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// Reads JSON text strictly (see the module documentation), numbers as doubles.
pub fn parse(text: &str) -> Result<Value, JcsError> {
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    parser.skip_ws();
    let value = parser.value(0)?;
    parser.skip_ws();
    if parser.pos != parser.bytes.len() {
        return Err(parser.syntax("text after the value"));
    }
    Ok(value)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn syntax(&self, what: &'static str) -> JcsError {
        JcsError::Syntax {
            what,
            offset: self.pos,
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &'static str, value: Value) -> Result<Value, JcsError> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.syntax("an unknown literal"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JcsError> {
        match self.bytes.get(self.pos) {
            None => Err(self.syntax("the end of the text where a value was expected")),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.syntax("a character that starts no value")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JcsError> {
        if depth > MAX_DEPTH {
            return Err(JcsError::TooDeep);
        }
        self.pos += 1;
        let mut map = Map::new();
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Value::Object(map));
        }
        loop {
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(self.syntax("a member name"));
            }
            let name = self.string()?;
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b':') {
                return Err(self.syntax("`:` after a member name"));
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value(depth)?;
            if map.contains_key(&name) {
                return Err(JcsError::DuplicateName(name));
            }
            map.insert(name, value);
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(map));
                }
                _ => return Err(self.syntax("`,` or `}` in an object")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, JcsError> {
        if depth > MAX_DEPTH {
            return Err(JcsError::TooDeep);
        }
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.syntax("`,` or `]` in an array")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JcsError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.syntax("four hex digits after \\u"))?;
        self.pos += 4;
        Ok(u32::from_str_radix(digits, 16).expect("four hex digits"))
    }

    fn string(&mut self) -> Result<String, JcsError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let start = self.pos;
            while let Some(&b) = self.bytes.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // Only ASCII bytes stop the scan, so both ends are on character boundaries.
            out.push_str(&self.text[start..self.pos]);
            match self.bytes.get(self.pos) {
                None => return Err(self.syntax("the end of the text inside a string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let at = self.pos;
                    self.pos += 1;
                    let escaped = match self.bytes.get(self.pos) {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos += 1;
                            let unit = self.hex4()?;
                            let code = match unit {
                                0xd800..=0xdbff => {
                                    if !self.text[self.pos..].starts_with("\\u") {
                                        return Err(JcsError::LoneSurrogate(at));
                                    }
                                    self.pos += 2;
                                    let low = self.hex4()?;
                                    if !(0xdc00..=0xdfff).contains(&low) {
                                        return Err(JcsError::LoneSurrogate(at));
                                    }
                                    0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00)
                                }
                                0xdc00..=0xdfff => return Err(JcsError::LoneSurrogate(at)),
                                _ => unit,
                            };
                            out.push(char::from_u32(code).expect("a scalar value"));
                            continue;
                        }
                        _ => return Err(self.syntax("an unknown escape")),
                    };
                    out.push(escaped);
                    self.pos += 1;
                }
                Some(_) => return Err(self.syntax("a control character inside a string")),
            }
        }
    }

    fn number(&mut self) -> Result<Value, JcsError> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let from = p.pos;
            while p.bytes.get(p.pos).is_some_and(u8::is_ascii_digit) {
                p.pos += 1;
            }
            p.pos - from
        };
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match self.bytes.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(self.syntax("a digit")),
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                return Err(self.syntax("a digit after the decimal point"));
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(self.syntax("a digit in the exponent"));
            }
        }
        // Rust's float parser rounds correctly, as RFC 8785 needs.
        let value: f64 = self.text[start..self.pos]
            .parse()
            .map_err(|_| self.syntax("a number"))?;
        Number::from_f64(value)
            .map(Value::Number)
            .ok_or(JcsError::NumberOutOfRange(start))
    }
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n.as_f64().expect("always a double")),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (name, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, name);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// Writes `text` as a JSON string in its canonical form.
pub(crate) fn write_string(out: &mut String, text: &str) {
    out.push('"');
    // Invoices, hashes and ids need no escaping: copied whole.
    if !text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(text);
        out.push('"');
        return;
    }
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// ECMAScript's `Number::toString` of a finite double.
fn write_number(out: &mut String, value: f64) {
    if value == 0.0 {
        out.push('0');
        return;
    }
    if value < 0.0 {
        out.push('-');
    }
    // `{:e}` writes the shortest digits that read back to the same double: `d.ddd…e<exp>`.
    let exp_form = format!("{:e}", value.abs());
    let (mantissa, exp) = exp_form.split_once('e').expect("{:e} has an exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i64;
    // value = 0.digits × 10^n
    let n = exp.parse::<i64>().expect("an integer exponent") + 1;
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if n - 1 < 0 { '-' } else { '+' });
        out.push_str(&(n - 1).abs().to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_ecmascript_writes_them() {
        for (input, want) in [
            ("0", "0"),
            ("-0", "0"),
            ("1", "1"),
            ("-1.5", "-1.5"),
            ("0.1", "0.1"),
            ("123.456", "123.456"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("1e-6", "0.000001"),
            ("1e-7", "1e-7"),
            ("1.5e-7", "1.5e-7"),
            ("5e-324", "5e-324"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("36028797018963968", "36028797018963970"),
            ("-123e-20", "-1.23e-18"),
        ] {
            assert_eq!(canonicalize(input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn refuses_what_has_no_canonical_form() {
        assert_eq!(
            canonicalize(r#"{"a":1,"a":2}"#),
            Err(JcsError::DuplicateName("a".into()))
        );
        assert!(matches!(
            canonicalize(r#""\ud800""#),
            Err(JcsError::LoneSurrogate(_))
        ));
        assert!(matches!(
            canonicalize(r#""\udc00\ud800""#),
            Err(JcsError::LoneSurrogate(_))
        ));
        assert!(matches!(
            canonicalize("1e400"),
            Err(JcsError::NumberOutOfRange(0))
        ));
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(canonicalize(&deep), Err(JcsError::TooDeep));
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert_eq!(canonicalize(&ok).unwrap(), ok);
        for bad in [
            "",
            "01",
            "1.",
            ".5",
            "+1",
            "1e",
            "[1,]",
            "{\"a\"}",
            "\"\t\"",
            "tru",
            "nul",
            "[1 2]",
            "{} {}",
            "\"\\x\"",
            "NaN",
            "\"\\u12\"",
        ] {
            assert!(
                matches!(canonicalize(bad), Err(JcsError::Syntax { .. })),
                "{bad:?}"
            );
        }
    }
}
