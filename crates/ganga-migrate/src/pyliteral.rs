//! Python literals, as Ganga writes them into `<value>` elements with `repr()` and reads
//! them back with `eval()`.
//!
//! No existing crate covers this: `py_literal` parses literals but not the constructor
//! calls Ganga's values contain (`datetime.datetime(2026, 11, 22, 18, 58, 33, 911865)`
//! inside the timestamps dict, `File(name='...')`, `DiracFile(...)`), so this is a small
//! recursive-descent parser for exactly what `repr()` produces, plus calls. Nothing is ever
//! evaluated: a call is kept as its name and arguments.
//!
//! Covered: `None`, `True`, `False`; ints of any sign (and Python 2 `123L`), floats
//! (`1.5`, `1e-3`, `inf`/`nan` as written by `float('inf')` never appear in repr, but
//! `float('inf')` as a call does); strings with single, double or triple quotes and the
//! prefixes `u`, `r`, `b` (any case, combined as Python allows), with every escape Python
//! knows except `\N{NAME}`; adjacent string literals (`'a' 'b'`); lists, tuples, dicts,
//! sets; dotted names and calls with positional and keyword arguments.

use std::fmt;

/// A parsed Python literal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PyValue {
    None,
    Bool(bool),
    /// Ints outside `i64` are kept as their digits.
    Int(i64),
    BigInt(String),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<PyValue>),
    Tuple(Vec<PyValue>),
    Set(Vec<PyValue>),
    /// Keys in the order written (Python dicts keep insertion order).
    Dict(Vec<(PyValue, PyValue)>),
    /// A bare name that is not `None`/`True`/`False` (e.g. `inf`), dotted or not.
    Name(String),
    /// `name(args, key=value)`, e.g. `datetime.datetime(...)` or `File(name='x')`.
    Call {
        name: String,
        args: Vec<PyValue>,
        kwargs: Vec<(String, PyValue)>,
    },
}

impl PyValue {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            PyValue::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            PyValue::Int(i) => Some(*i),
            PyValue::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    pub(crate) fn is_none(&self) -> bool {
        matches!(self, PyValue::None)
    }

    /// The items of a list, tuple or set.
    pub(crate) fn items(&self) -> Option<&[PyValue]> {
        match self {
            PyValue::List(v) | PyValue::Tuple(v) | PyValue::Set(v) => Some(v),
            _ => None,
        }
    }

    /// A keyword argument of a call, or else its positional argument `pos`.
    pub(crate) fn call_arg(&self, key: &str, pos: usize) -> Option<&PyValue> {
        match self {
            PyValue::Call { args, kwargs, .. } => kwargs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .or_else(|| args.get(pos)),
            _ => None,
        }
    }

    /// What Python's `str()` gives for a scalar (`True`, `1.0`, `None`...); `None` for
    /// containers and calls, which have no sensible word form.
    pub(crate) fn py_str(&self) -> Option<String> {
        Some(match self {
            PyValue::None => "None".to_owned(),
            PyValue::Bool(true) => "True".to_owned(),
            PyValue::Bool(false) => "False".to_owned(),
            PyValue::Int(i) => i.to_string(),
            PyValue::BigInt(s) => s.clone(),
            PyValue::Float(x) => py_float(*x),
            PyValue::Str(s) => s.clone(),
            PyValue::Bytes(_)
            | PyValue::List(_)
            | PyValue::Tuple(_)
            | PyValue::Set(_)
            | PyValue::Dict(_)
            | PyValue::Name(_)
            | PyValue::Call { .. } => return None,
        })
    }
}

/// Python's `repr(float)`: the shortest text that reads back the same, always with a
/// decimal point or exponent.
pub(crate) fn py_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let abs = x.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        // Python switches to exponent notation: 1e-05, 1e+16.
        let s = format!("{x:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let s = format!("{x}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

impl fmt::Display for PyValue {
    /// Python-like text, for messages and reports (not guaranteed to be valid Python).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn seq(
            f: &mut fmt::Formatter<'_>,
            open: &str,
            items: &[PyValue],
            close: &str,
        ) -> fmt::Result {
            f.write_str(open)?;
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{v}")?;
            }
            f.write_str(close)
        }
        match self {
            PyValue::Str(s) => write!(f, "{s:?}"),
            PyValue::Bytes(b) => write!(f, "b{:?}", String::from_utf8_lossy(b)),
            PyValue::List(v) => seq(f, "[", v, "]"),
            PyValue::Tuple(v) => seq(f, "(", v, ")"),
            PyValue::Set(v) => seq(f, "{", v, "}"),
            PyValue::Dict(items) => {
                f.write_str("{")?;
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
            PyValue::Name(n) => f.write_str(n),
            PyValue::Call { name, args, kwargs } => {
                write!(f, "{name}(")?;
                let mut first = true;
                for a in args {
                    if !first {
                        f.write_str(", ")?;
                    }
                    first = false;
                    write!(f, "{a}")?;
                }
                for (k, v) in kwargs {
                    if !first {
                        f.write_str(", ")?;
                    }
                    first = false;
                    write!(f, "{k}={v}")?;
                }
                f.write_str(")")
            }
            other => match other.py_str() {
                Some(s) => f.write_str(&s),
                None => Ok(()),
            },
        }
    }
}

/// Why a text is not a Python literal: what was expected, at which byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Python literal: {message} at byte {at}")]
pub(crate) struct LiteralError {
    pub(crate) at: usize,
    pub(crate) message: String,
}

/// Parses one Python literal (surrounding whitespace allowed).
pub(crate) fn parse(text: &str) -> Result<PyValue, LiteralError> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        pos: 0,
        depth: 0,
    };
    p.ws();
    let v = p.value()?;
    p.ws();
    if p.pos != p.s.len() {
        return Err(p.err("unexpected text after the value"));
    }
    Ok(v)
}

/// Nesting deeper than this is refused rather than risking the stack.
const MAX_DEPTH: usize = 200;

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn err(&self, message: impl Into<String>) -> LiteralError {
        LiteralError {
            at: self.pos,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(c) = self.peek() {
            if c == b' ' || c == b'\t' || c == b'\n' || c == b'\r' || c == b'\x0c' {
                self.pos += 1;
            } else if c == b'\\' && self.s.get(self.pos + 1) == Some(&b'\n') {
                self.pos += 2; // an explicit line continuation
            } else {
                break;
            }
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), LiteralError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.err(format!("expected `{}`", c as char)))
        }
    }

    fn value(&mut self) -> Result<PyValue, LiteralError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        let v = self.value_inner();
        self.depth -= 1;
        v
    }

    fn value_inner(&mut self) -> Result<PyValue, LiteralError> {
        let Some(c) = self.peek() else {
            return Err(self.err("expected a value, found the end"));
        };
        match c {
            b'[' => {
                self.pos += 1;
                let (items, _) = self.items(b']')?;
                Ok(PyValue::List(items))
            }
            b'(' => {
                self.pos += 1;
                let (items, trailing_comma) = self.items(b')')?;
                if items.len() == 1 && !trailing_comma {
                    // Parentheses around one value group it; `(x,)` is a tuple.
                    Ok(items.into_iter().next().unwrap_or(PyValue::None))
                } else {
                    Ok(PyValue::Tuple(items))
                }
            }
            b'{' => {
                self.pos += 1;
                self.dict_or_set()
            }
            b'-' | b'+' => {
                self.pos += 1;
                self.ws();
                let v = self.value()?;
                let negative = c == b'-';
                match v {
                    PyValue::Int(i) if negative => Ok(i
                        .checked_neg()
                        .map_or_else(|| PyValue::BigInt(format!("-{i}")), PyValue::Int)),
                    PyValue::BigInt(s) if negative => Ok(match s.strip_prefix('-') {
                        Some(rest) => PyValue::BigInt(rest.to_owned()),
                        None => match format!("-{s}").parse() {
                            Ok(i) => PyValue::Int(i),
                            Err(_) => PyValue::BigInt(format!("-{s}")),
                        },
                    }),
                    PyValue::Float(x) if negative => Ok(PyValue::Float(-x)),
                    PyValue::Bool(b) if negative => Ok(PyValue::Int(-i64::from(b))),
                    v @ (PyValue::Int(_)
                    | PyValue::BigInt(_)
                    | PyValue::Float(_)
                    | PyValue::Bool(_)) => Ok(v),
                    _ => Err(self.err("a sign must be followed by a number")),
                }
            }
            b'0'..=b'9' | b'.' => self.number(),
            b'\'' | b'"' => self.strings(),
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                // A string prefix (u'', b'', r'', rb''...) or a name.
                if let Some(prefix_len) = self.string_prefix() {
                    let _ = prefix_len;
                    return self.strings();
                }
                self.name_or_call()
            }
            _ => Err(self.err(format!("unexpected `{}`", c as char))),
        }
    }

    /// Comma-separated values up to `close`; whether a comma trailed the last one.
    fn items(&mut self, close: u8) -> Result<(Vec<PyValue>, bool), LiteralError> {
        let mut items = Vec::new();
        let mut trailing = false;
        loop {
            self.ws();
            if self.eat(close) {
                return Ok((items, trailing));
            }
            items.push(self.value()?);
            self.ws();
            if self.eat(b',') {
                trailing = true;
                continue;
            }
            trailing = false;
            self.ws();
            if self.eat(close) {
                return Ok((items, trailing));
            }
            return Err(self.err(format!("expected `,` or `{}`", close as char)));
        }
    }

    fn dict_or_set(&mut self) -> Result<PyValue, LiteralError> {
        self.ws();
        if self.eat(b'}') {
            return Ok(PyValue::Dict(Vec::new()));
        }
        let first = self.value()?;
        self.ws();
        if self.eat(b':') {
            let mut pairs = Vec::new();
            self.ws();
            let v = self.value()?;
            pairs.push((first, v));
            loop {
                self.ws();
                if self.eat(b'}') {
                    return Ok(PyValue::Dict(pairs));
                }
                self.expect(b',')?;
                self.ws();
                if self.eat(b'}') {
                    return Ok(PyValue::Dict(pairs));
                }
                let k = self.value()?;
                self.ws();
                self.expect(b':')?;
                self.ws();
                let v = self.value()?;
                pairs.push((k, v));
            }
        }
        let mut items = vec![first];
        loop {
            self.ws();
            if self.eat(b'}') {
                return Ok(PyValue::Set(items));
            }
            self.expect(b',')?;
            self.ws();
            if self.eat(b'}') {
                return Ok(PyValue::Set(items));
            }
            items.push(self.value()?);
        }
    }

    fn number(&mut self) -> Result<PyValue, LiteralError> {
        let start = self.pos;
        // 0x.., 0o.., 0b..
        if self.peek() == Some(b'0')
            && let Some(&radix_char) = self.s.get(self.pos + 1)
        {
            let radix = match radix_char {
                b'x' | b'X' => Some(16),
                b'o' | b'O' => Some(8),
                b'b' | b'B' => Some(2),
                _ => None,
            };
            if let Some(radix) = radix {
                self.pos += 2;
                let digits_start = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
                {
                    self.pos += 1;
                }
                let digits: String = self.text[digits_start..self.pos]
                    .chars()
                    .filter(|&c| c != '_')
                    .collect();
                let digits = digits.trim_end_matches(['L', 'l']);
                return i64::from_str_radix(digits, radix)
                    .map(PyValue::Int)
                    .map_err(|_| self.err("bad integer literal"));
            }
        }
        let mut is_float = false;
        while let Some(c) = self.peek() {
            match c {
                b'0'..=b'9' | b'_' => self.pos += 1,
                b'.' => {
                    is_float = true;
                    self.pos += 1;
                }
                b'e' | b'E' => {
                    is_float = true;
                    self.pos += 1;
                    if matches!(self.peek(), Some(b'+' | b'-')) {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
        let text: String = self.text[start..self.pos]
            .chars()
            .filter(|&c| c != '_')
            .collect();
        if matches!(self.peek(), Some(b'j' | b'J')) {
            return Err(self.err("complex numbers are not supported"));
        }
        if is_float {
            return text
                .parse::<f64>()
                .map(PyValue::Float)
                .map_err(|_| self.err(format!("bad float literal `{text}`")));
        }
        // Python 2 longs: 123L.
        if matches!(self.peek(), Some(b'L' | b'l')) {
            self.pos += 1;
        }
        if text.is_empty() {
            return Err(self.err("expected a number"));
        }
        Ok(match text.parse::<i64>() {
            Ok(i) => PyValue::Int(i),
            Err(_) => PyValue::BigInt(text.trim_start_matches('0').to_owned()),
        })
    }

    /// The length of a string prefix at the cursor (`u`, `b`, `r`, `br`, `rb`, ...), if a
    /// quote follows it.
    fn string_prefix(&self) -> Option<usize> {
        let mut i = self.pos;
        while i < self.s.len()
            && i - self.pos < 2
            && matches!(self.s[i], b'u' | b'U' | b'b' | b'B' | b'r' | b'R')
        {
            i += 1;
        }
        (i > self.pos && matches!(self.s.get(i), Some(b'\'' | b'"'))).then_some(i - self.pos)
    }

    /// One string literal or several adjacent ones (`'a' 'b'`), concatenated.
    fn strings(&mut self) -> Result<PyValue, LiteralError> {
        let mut out: Option<PyValue> = None;
        loop {
            let piece = self.string()?;
            out = Some(match (out, piece) {
                (None, p) => p,
                (Some(PyValue::Str(mut a)), PyValue::Str(b)) => {
                    a.push_str(&b);
                    PyValue::Str(a)
                }
                (Some(PyValue::Bytes(mut a)), PyValue::Bytes(b)) => {
                    a.extend(b);
                    PyValue::Bytes(a)
                }
                _ => return Err(self.err("cannot mix bytes and str literals")),
            });
            let save = self.pos;
            self.ws();
            let next_is_string = match self.peek() {
                Some(b'\'' | b'"') => true,
                Some(_) => self.string_prefix().is_some(),
                None => false,
            };
            if !next_is_string {
                self.pos = save;
                return Ok(out.unwrap_or(PyValue::Str(String::new())));
            }
        }
    }

    fn string(&mut self) -> Result<PyValue, LiteralError> {
        let mut bytes = false;
        let mut raw = false;
        while let Some(c) = self.peek() {
            match c {
                b'u' | b'U' => {}
                b'b' | b'B' => bytes = true,
                b'r' | b'R' => raw = true,
                _ => break,
            }
            self.pos += 1;
        }
        let quote = self.peek().ok_or_else(|| self.err("expected a quote"))?;
        let triple = self.s.get(self.pos..self.pos + 3) == Some(&[quote, quote, quote][..]);
        self.pos += if triple { 3 } else { 1 };
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err("unterminated string"));
            };
            if c == quote {
                if !triple {
                    self.pos += 1;
                    break;
                }
                if self.s.get(self.pos..self.pos + 3) == Some(&[quote, quote, quote][..]) {
                    self.pos += 3;
                    break;
                }
            }
            if !triple && c == b'\n' {
                return Err(self.err("newline in a string"));
            }
            if c == b'\\' {
                if raw {
                    // A raw string keeps the backslash, but it still escapes a quote.
                    buf.push(b'\\');
                    self.pos += 1;
                    if let Some(n) = self.peek() {
                        buf.push(n);
                        self.pos += 1;
                    }
                    continue;
                }
                self.pos += 1;
                self.escape(&mut buf, bytes)?;
                continue;
            }
            if bytes && c >= 0x80 {
                return Err(self.err("bytes literals may contain only ASCII"));
            }
            buf.push(c);
            self.pos += 1;
        }
        if bytes {
            Ok(PyValue::Bytes(buf))
        } else {
            // The input is a &str and escapes push UTF-8, so this cannot fail; a `\x`
            // escape in a str is a code point, handled in `escape`.
            String::from_utf8(buf)
                .map(PyValue::Str)
                .map_err(|_| self.err("invalid UTF-8 in a string"))
        }
    }

    fn escape(&mut self, buf: &mut Vec<u8>, bytes: bool) -> Result<(), LiteralError> {
        let Some(c) = self.peek() else {
            return Err(self.err("unterminated escape"));
        };
        self.pos += 1;
        let simple = match c {
            b'\n' => return Ok(()), // line continuation inside a string
            b'\\' => Some(b'\\'),
            b'\'' => Some(b'\''),
            b'"' => Some(b'"'),
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            _ => None,
        };
        if let Some(b) = simple {
            buf.push(b);
            return Ok(());
        }
        let push_code = |buf: &mut Vec<u8>, code: u32, p: &Self| -> Result<(), LiteralError> {
            if bytes {
                let b = u8::try_from(code).map_err(|_| p.err("byte escape out of range"))?;
                buf.push(b);
            } else {
                let ch = char::from_u32(code)
                    .ok_or_else(|| p.err(format!("escape \\u{code:x} is not a character")))?;
                let mut tmp = [0u8; 4];
                buf.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
            }
            Ok(())
        };
        match c {
            b'0'..=b'7' => {
                let mut code = u32::from(c - b'0');
                for _ in 0..2 {
                    match self.peek() {
                        Some(d @ b'0'..=b'7') => {
                            code = code * 8 + u32::from(d - b'0');
                            self.pos += 1;
                        }
                        _ => break,
                    }
                }
                push_code(buf, code, self)
            }
            b'x' => {
                let code = self.hex(2)?;
                push_code(buf, code, self)
            }
            b'u' if !bytes => {
                let code = self.hex(4)?;
                push_code(buf, code, self)
            }
            b'U' if !bytes => {
                let code = self.hex(8)?;
                push_code(buf, code, self)
            }
            b'N' if !bytes => Err(self.err("\\N{...} escapes are not supported")),
            other => {
                // Python keeps unknown escapes as they are: "\q" is backslash, q.
                buf.push(b'\\');
                self.pos -= 1;
                if other < 0x80 {
                    buf.push(other);
                    self.pos += 1;
                }
                Ok(())
            }
        }
    }

    fn hex(&mut self, n: usize) -> Result<u32, LiteralError> {
        let digits = self
            .text
            .get(self.pos..self.pos + n)
            .ok_or_else(|| self.err("truncated hex escape"))?;
        let code = u32::from_str_radix(digits, 16).map_err(|_| self.err("bad hex escape"))?;
        self.pos += n;
        Ok(code)
    }

    fn name(&mut self) -> String {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c >= 0x80 {
                self.pos += 1;
            } else {
                break;
            }
        }
        self.text[start..self.pos].to_owned()
    }

    fn name_or_call(&mut self) -> Result<PyValue, LiteralError> {
        let name = self.name();
        match name.as_str() {
            "None" => return Ok(PyValue::None),
            "True" => return Ok(PyValue::Bool(true)),
            "False" => return Ok(PyValue::Bool(false)),
            _ => {}
        }
        let save = self.pos;
        self.ws();
        if !self.eat(b'(') {
            self.pos = save;
            return Ok(PyValue::Name(name));
        }
        let mut args = Vec::new();
        let mut kwargs = Vec::new();
        loop {
            self.ws();
            if self.eat(b')') {
                break;
            }
            // `key=value` or a positional value.
            let save = self.pos;
            let is_kw = self
                .peek()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
                && {
                    let key = self.name();
                    self.ws();
                    let kw = !key.contains('.')
                        && self.peek() == Some(b'=')
                        && self.s.get(self.pos + 1) != Some(&b'=');
                    if kw {
                        self.pos += 1;
                        self.ws();
                        let v = self.value()?;
                        kwargs.push((key, v));
                    }
                    kw
                };
            if !is_kw {
                self.pos = save;
                if !kwargs.is_empty() {
                    return Err(self.err("positional argument after a keyword argument"));
                }
                args.push(self.value()?);
            }
            self.ws();
            if self.eat(b',') {
                continue;
            }
            self.ws();
            self.expect(b')')?;
            break;
        }
        Ok(PyValue::Call { name, args, kwargs })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn s(v: &str) -> PyValue {
        PyValue::Str(v.to_owned())
    }

    #[test]
    fn scalars() {
        assert_eq!(parse("None").unwrap(), PyValue::None);
        assert_eq!(parse(" True ").unwrap(), PyValue::Bool(true));
        assert_eq!(parse("False").unwrap(), PyValue::Bool(false));
        assert_eq!(parse("-1").unwrap(), PyValue::Int(-1));
        assert_eq!(parse("21180").unwrap(), PyValue::Int(21180));
        assert_eq!(parse("123L").unwrap(), PyValue::Int(123));
        assert_eq!(parse("0x1f").unwrap(), PyValue::Int(31));
        assert_eq!(parse("1_000").unwrap(), PyValue::Int(1000));
        assert_eq!(
            parse("123456789012345678901234567890").unwrap(),
            PyValue::BigInt("123456789012345678901234567890".into())
        );
        assert_eq!(parse("1.5").unwrap(), PyValue::Float(1.5));
        assert_eq!(parse("-2.5e-3").unwrap(), PyValue::Float(-2.5e-3));
        assert_eq!(parse("1e16").unwrap(), PyValue::Float(1e16));
        assert_eq!(parse(".5").unwrap(), PyValue::Float(0.5));
        assert_eq!(parse("inf").unwrap(), PyValue::Name("inf".into()));
    }

    #[test]
    fn strings_with_quotes_and_escapes() {
        // The comment of the fixture's job 5, after XML unescaping.
        let text = r#"'Tom\'s "quoted" <comment> & ampersand, unicode éü✓, newline\nsecond line, backslash \\ end'"#;
        assert_eq!(
            parse(text).unwrap(),
            s(
                "Tom's \"quoted\" <comment> & ampersand, unicode éü✓, newline\nsecond line, backslash \\ end"
            )
        );
        assert_eq!(parse(r#""it's""#).unwrap(), s("it's"));
        assert_eq!(
            parse(r"'\x41\u00e9\U0001F600\101\0'").unwrap(),
            s("Aé😀A\0")
        );
        assert_eq!(parse(r"'\t\r\a\b\f\v'").unwrap(), s("\t\r\x07\x08\x0c\x0b"));
        assert_eq!(parse(r"'\q'").unwrap(), s("\\q"), "unknown escapes stay");
        assert_eq!(parse("u'py2 unicode'").unwrap(), s("py2 unicode"));
        assert_eq!(parse(r"r'C:\dir\n'").unwrap(), s("C:\\dir\\n"));
        assert_eq!(parse("'a' \"b\"").unwrap(), s("ab"));
        assert_eq!(parse("'''tri'ple'''").unwrap(), s("tri'ple"));
        assert_eq!(parse("''").unwrap(), s(""));
    }

    #[test]
    fn bytes() {
        assert_eq!(
            parse(r"b'\x00\xff a\n'").unwrap(),
            PyValue::Bytes(vec![0, 0xff, b' ', b'a', b'\n'])
        );
        assert_eq!(parse(r"rb'\x'").unwrap(), PyValue::Bytes(b"\\x".to_vec()));
        assert!(parse("b'é'").is_err());
        assert!(
            parse("b'a' 'b'").is_err(),
            "bytes and str do not concatenate"
        );
    }

    #[test]
    fn containers() {
        assert_eq!(parse("[]").unwrap(), PyValue::List(vec![]));
        assert_eq!(
            parse("[21180]").unwrap(),
            PyValue::List(vec![PyValue::Int(21180)])
        );
        assert_eq!(
            parse("(1,)").unwrap(),
            PyValue::Tuple(vec![PyValue::Int(1)])
        );
        assert_eq!(parse("(1)").unwrap(), PyValue::Int(1));
        assert_eq!(parse("()").unwrap(), PyValue::Tuple(vec![]));
        assert_eq!(
            parse("{1, 2}").unwrap(),
            PyValue::Set(vec![PyValue::Int(1), PyValue::Int(2)])
        );
        assert_eq!(
            parse(r#"{'WEIRD': 'a&b<c>"d\'e', 'EMPTY': ''}"#).unwrap(),
            PyValue::Dict(vec![(s("WEIRD"), s("a&b<c>\"d'e")), (s("EMPTY"), s("")),])
        );
        assert_eq!(
            parse("{'/': {'small': {'analysis': {'9': '9', '11': '11'}}},}").unwrap(),
            PyValue::Dict(vec![(
                s("/"),
                PyValue::Dict(vec![(
                    s("small"),
                    PyValue::Dict(vec![(
                        s("analysis"),
                        PyValue::Dict(vec![(s("9"), s("9")), (s("11"), s("11"))])
                    )])
                )])
            )])
        );
        assert_eq!(
            parse("[['-c', 'x'], [1, 2.0, None, True],]").unwrap(),
            PyValue::List(vec![
                PyValue::List(vec![s("-c"), s("x")]),
                PyValue::List(vec![
                    PyValue::Int(1),
                    PyValue::Float(2.0),
                    PyValue::None,
                    PyValue::Bool(true)
                ]),
            ])
        );
    }

    #[test]
    fn calls() {
        let v = parse("{'new': datetime.datetime(2026, 11, 22, 18, 58, 33, 911865), 'x': datetime.datetime(2026, 1, 2, 3, 4, 5)}").unwrap();
        let PyValue::Dict(items) = v else { panic!() };
        assert_eq!(
            items[0].1,
            PyValue::Call {
                name: "datetime.datetime".into(),
                args: [2026, 11, 22, 18, 58, 33, 911865]
                    .map(PyValue::Int)
                    .to_vec(),
                kwargs: vec![],
            }
        );
        let f = parse("File(name='/bin/x', subdir = '.')").unwrap();
        assert_eq!(f.call_arg("name", 0), Some(&s("/bin/x")));
        assert_eq!(f.call_arg("subdir", 1), Some(&s(".")));
        let g = parse("DiracFile('a.root', lfn='/lhcb/x')").unwrap();
        assert_eq!(g.call_arg("namePattern", 0), Some(&s("a.root")));
        assert_eq!(g.call_arg("lfn", 9), Some(&s("/lhcb/x")));
        assert_eq!(
            parse("set()").unwrap(),
            PyValue::Call {
                name: "set".into(),
                args: vec![],
                kwargs: vec![]
            }
        );
        assert!(parse("f(a=1, 2)").is_err());
    }

    #[test]
    fn errors_say_where() {
        let e = parse("'unterminated").unwrap_err();
        assert_eq!(e.message, "unterminated string");
        assert!(parse("[1, 2").is_err());
        assert!(parse("{'a' 1}").is_err());
        assert!(parse("1 2").is_err());
        assert!(parse("").is_err());
        assert!(parse("@").is_err());
        assert!(parse("1j").is_err());
        assert!(
            parse(&"[".repeat(1000)).is_err(),
            "deep nesting is refused, not a crash"
        );
    }

    #[test]
    fn py_str_matches_python() {
        assert_eq!(PyValue::Float(1.0).py_str().unwrap(), "1.0");
        assert_eq!(PyValue::Float(0.1).py_str().unwrap(), "0.1");
        assert_eq!(PyValue::Float(1e-5).py_str().unwrap(), "1e-05");
        assert_eq!(PyValue::Float(1e16).py_str().unwrap(), "1e+16");
        assert_eq!(PyValue::Float(123.456).py_str().unwrap(), "123.456");
        assert_eq!(PyValue::Bool(true).py_str().unwrap(), "True");
        assert_eq!(PyValue::Int(-3).py_str().unwrap(), "-3");
    }
}
