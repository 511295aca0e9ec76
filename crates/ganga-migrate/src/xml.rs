//! Ganga's XML grammar (VStreamer) into a tree of [`Object`]s, with `<value>` texts read
//! the way Ganga reads them.
//!
//! ```text
//! file      := <root> CLASS </root>
//! CLASS     := <class name="Cls" version="MAJ.MIN" category="cat"> ATTRIBUTE* </class>
//! ATTRIBUTE := <attribute name="attr"> ( VALUE | SEQUENCE | CLASS ) </attribute>
//! SEQUENCE  := <sequence> ( VALUE | CLASS | SEQUENCE )* </sequence>
//! VALUE     := <value> python-literal, XML-escaped </value>
//! ```
//!
//! A `<value>` text goes through what Ganga's `VStreamer.Loader` does: the XML parser
//! resolves entities, then `xml.sax.saxutils.unescape` runs once more (so a literal `&lt;`
//! in a string reads back as `<`, as Ganga itself shows it), then `re.sub(r'(\d)L(\})',
//! r'\1\2', s)`, then the text is parsed as a Python literal (never evaluated).

use std::borrow::Cow;
use std::fmt;

use quick_xml::Reader;
use quick_xml::events::{BytesRef, BytesStart, Event};

use crate::pyliteral::{self, PyValue};

/// A `<class>` element: a Ganga object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Object {
    pub(crate) class: String,
    pub(crate) category: String,
    /// The schema version as written, e.g. `1.6`.
    pub(crate) version: String,
    pub(crate) attrs: Vec<(String, Node)>,
}

/// What an `<attribute>` or a `<sequence>` item holds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Value(PyValue),
    Seq(Vec<Node>),
    Object(Box<Object>),
}

impl Object {
    pub(crate) fn get(&self, name: &str) -> Option<&Node> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// An attribute holding a plain value.
    pub(crate) fn value(&self, name: &str) -> Option<&PyValue> {
        match self.get(name)? {
            Node::Value(v) => Some(v),
            _ => None,
        }
    }

    pub(crate) fn str(&self, name: &str) -> Option<&str> {
        self.value(name).and_then(PyValue::as_str)
    }

    pub(crate) fn int(&self, name: &str) -> Option<i64> {
        self.value(name).and_then(PyValue::as_int)
    }

    /// An attribute holding an object.
    pub(crate) fn object(&self, name: &str) -> Option<&Object> {
        match self.get(name)? {
            Node::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The parsed `major.minor` schema version.
    pub(crate) fn schema_version(&self) -> Option<(u32, u32)> {
        let (major, minor) = self.version.split_once('.')?;
        Some((major.trim().parse().ok()?, minor.trim().parse().ok()?))
    }

    /// Calls `f` on this object and every object below it.
    pub(crate) fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Object)) {
        f(self);
        for (_, node) in &self.attrs {
            node.walk(f);
        }
    }
}

impl Node {
    pub(crate) fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Object)) {
        match self {
            Node::Value(_) => {}
            Node::Seq(items) => items.iter().for_each(|n| n.walk(f)),
            Node::Object(o) => o.walk(f),
        }
    }
}

/// Why a file is not a Ganga XML object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct XmlError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for XmlError {}

/// Open elements at most. Ganga's objects nest a few levels (a job, its application, a
/// file in a sequence); the tree read is walked, printed and dropped recursively, so a
/// file nested deeper is refused rather than risking the stack.
const MAX_DEPTH: usize = 256;

enum Frame {
    Class(Object),
    Attr(String, Option<Node>),
    Seq(Vec<Node>),
}

/// Parses one `data` file.
pub(crate) fn parse(bytes: &[u8]) -> Result<Object, XmlError> {
    let text = std::str::from_utf8(bytes).map_err(|e| XmlError {
        line: line_of(bytes, e.valid_up_to()),
        message: format!("not UTF-8: {e}"),
    })?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut document = Document::default();
    loop {
        let event = reader.read_event().map_err(|e| XmlError {
            line: line_of(
                bytes,
                usize::try_from(reader.error_position()).unwrap_or(usize::MAX),
            ),
            message: e.to_string(),
        })?;
        let step = match event {
            Event::Start(e) => document.open(&e),
            Event::Empty(e) => document.empty(&e),
            Event::Text(t) => {
                document.add_text(|| t.xml10_content());
                Ok(())
            }
            Event::CData(t) => {
                document.add_text(|| t.xml10_content());
                Ok(())
            }
            Event::GeneralRef(r) => document.add_entity(&r),
            Event::End(e) => document.close(e.name().as_ref()),
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => Ok(()),
        };
        step.map_err(|message| XmlError {
            line: line_of(
                bytes,
                usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX),
            ),
            message,
        })?;
    }
    document.finish(bytes)
}

/// The file read so far: where in `<root>` it is, the elements open, the text of an open
/// `<value>`. Each step answers an error message; [`parse`] adds the line.
#[derive(Default)]
struct Document {
    in_root: bool,
    root_done: bool,
    object: Option<Object>,
    stack: Vec<Frame>,
    value: Option<String>,
}

impl Document {
    fn open(&mut self, e: &BytesStart<'_>) -> Result<(), String> {
        if self.value.is_some() {
            return Err("an element inside <value>".into());
        }
        let name = e.name().as_ref().to_owned();
        if self.stack.len() >= MAX_DEPTH {
            return Err(format!(
                "nested too deeply (more than {MAX_DEPTH} open elements)"
            ));
        }
        if self.root_done {
            return Err(format!("<{name}> after </root>"));
        }
        match name.as_str() {
            "root" if !self.in_root => self.in_root = true,
            "root" => return Err("nested <root>".into()),
            _ if !self.in_root => return Err(format!("<{name}> outside <root>")),
            "class" => self.open_class(e)?,
            "attribute" => self.open_attribute(e)?,
            "sequence" => {
                check_slot(&self.stack)?;
                self.stack.push(Frame::Seq(Vec::new()));
            }
            "value" => {
                check_slot(&self.stack)?;
                self.value = Some(String::new());
            }
            other => return Err(format!("unknown element <{other}>")),
        }
        Ok(())
    }

    fn open_class(&mut self, e: &BytesStart<'_>) -> Result<(), String> {
        if self.object.is_some() && self.stack.is_empty() {
            return Err("more than one object in <root>".into());
        }
        self.stack.push(Frame::Class(Object {
            class: attr(e, "name")?,
            category: attr(e, "category")?,
            version: attr(e, "version")?,
            attrs: Vec::new(),
        }));
        Ok(())
    }

    fn open_attribute(&mut self, e: &BytesStart<'_>) -> Result<(), String> {
        if !matches!(self.stack.last(), Some(Frame::Class(_))) {
            return Err("<attribute> outside <class>".into());
        }
        let name = attr(e, "name")?;
        self.stack.push(Frame::Attr(name, None));
        Ok(())
    }

    /// `<sequence/>` is an empty list; no other element may be empty.
    fn empty(&mut self, e: &BytesStart<'_>) -> Result<(), String> {
        let name = e.name().as_ref().to_owned();
        let node = match name.as_str() {
            "sequence" => Node::Seq(Vec::new()),
            "value" => return Err("an empty <value/>".into()),
            other => return Err(format!("unexpected <{other}/>")),
        };
        check_slot(&self.stack)?;
        deliver(&mut self.stack, node)
    }

    /// Text counts only inside a `<value>` (elsewhere it is the file's indentation).
    fn add_text<'t>(&mut self, content: impl FnOnce() -> Cow<'t, str>) {
        if let Some(v) = self.value.as_mut() {
            v.push_str(&content());
        }
    }

    fn add_entity(&mut self, r: &BytesRef<'_>) -> Result<(), String> {
        if let Some(v) = self.value.as_mut() {
            let resolved = match r.resolve_char_ref() {
                Ok(Some(ch)) => ch.to_string(),
                Ok(None) => quick_xml::escape::resolve_predefined_entity(r)
                    .ok_or_else(|| format!("undefined entity &{};", &**r))?
                    .to_owned(),
                Err(e) => return Err(e.to_string()),
            };
            v.push_str(&resolved);
        }
        Ok(())
    }

    fn close(&mut self, name: &str) -> Result<(), String> {
        match name {
            "value" => {
                let text = self.value.take().unwrap_or_default();
                let parsed = read_value(&text)?;
                deliver(&mut self.stack, Node::Value(parsed))
            }
            "sequence" => match self.stack.pop() {
                Some(Frame::Seq(items)) => deliver(&mut self.stack, Node::Seq(items)),
                _ => Err("misplaced </sequence>".into()),
            },
            "attribute" => self.close_attribute(),
            "class" => self.close_class(),
            "root" => {
                if !self.stack.is_empty() {
                    return Err("</root> inside an open element".into());
                }
                self.in_root = false;
                self.root_done = true;
                Ok(())
            }
            other => Err(format!("unknown element </{other}>")),
        }
    }

    fn close_attribute(&mut self) -> Result<(), String> {
        match self.stack.pop() {
            Some(Frame::Attr(n, Some(node))) => match self.stack.last_mut() {
                Some(Frame::Class(o)) => {
                    o.attrs.push((n, node));
                    Ok(())
                }
                _ => Err("misplaced </attribute>".into()),
            },
            Some(Frame::Attr(n, None)) => Err(format!("attribute `{n}` has no value")),
            _ => Err("misplaced </attribute>".into()),
        }
    }

    /// The outermost class is the file's object; an inner one is a value.
    fn close_class(&mut self) -> Result<(), String> {
        match self.stack.pop() {
            Some(Frame::Class(o)) if self.stack.is_empty() => {
                self.object = Some(o);
                Ok(())
            }
            Some(Frame::Class(o)) => deliver(&mut self.stack, Node::Object(Box::new(o))),
            _ => Err("misplaced </class>".into()),
        }
    }

    /// The object, once the whole file (up to `</root>`) has been read.
    fn finish(self, bytes: &[u8]) -> Result<Object, XmlError> {
        if !self.root_done {
            return Err(XmlError {
                line: line_of(bytes, bytes.len()),
                message: "the file ends before </root> (truncated?)".into(),
            });
        }
        self.object.ok_or_else(|| XmlError {
            line: 1,
            message: "<root> holds no object".into(),
        })
    }
}

fn attr(e: &BytesStart<'_>, name: &str) -> Result<String, String> {
    match e.try_get_attribute(name) {
        Ok(Some(a)) => a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map(|v| v.into_owned())
            .map_err(|err| format!("attribute {name}: {err}")),
        Ok(None) => Err(format!(
            "<{}> without a `{name}` attribute",
            e.name().as_ref()
        )),
        Err(err) => Err(err.to_string()),
    }
}

/// A value or sequence may only appear where a value is expected.
fn check_slot(stack: &[Frame]) -> Result<(), String> {
    match stack.last() {
        Some(Frame::Attr(_, None) | Frame::Seq(_)) => Ok(()),
        Some(Frame::Attr(n, Some(_))) => Err(format!("attribute `{n}` has two values")),
        _ => Err("a value outside an attribute".into()),
    }
}

fn deliver(stack: &mut [Frame], node: Node) -> Result<(), String> {
    match stack.last_mut() {
        Some(Frame::Attr(_, slot @ None)) => {
            *slot = Some(node);
            Ok(())
        }
        Some(Frame::Attr(n, Some(_))) => Err(format!("attribute `{n}` has two values")),
        Some(Frame::Seq(items)) => {
            items.push(node);
            Ok(())
        }
        Some(Frame::Class(o)) => Err(format!(
            "a value directly inside <class name=\"{}\">",
            o.class
        )),
        None => Err("a value outside any object".into()),
    }
}

/// A `<value>` text, already XML-decoded, as Ganga reads it.
pub(crate) fn read_value(text: &str) -> Result<PyValue, String> {
    let text = sax_unescape(text);
    let text = drop_py2_long_before_brace(&text);
    pyliteral::parse(&text).map_err(|e| {
        let mut shown: String = text.chars().take(120).collect();
        if shown.len() < text.len() {
            shown.push('…');
        }
        format!("value `{shown}`: {e}")
    })
}

/// `xml.sax.saxutils.unescape`: `&lt;`, `&gt;`, then `&amp;`.
fn sax_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// `re.sub(r'(\d)L(\})', r'\1\2', s)`: Python 2 longs before a closing brace.
fn drop_py2_long_before_brace(s: &str) -> String {
    if !s.contains("L}") {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() && b.get(i + 1) == Some(&b'L') && b.get(i + 2) == Some(&b'}') {
            out.push(b[i] as char);
            out.push('}');
            i += 3;
        } else {
            // Copy one whole character.
            let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&s[i..i + ch_len]);
            i += ch_len;
        }
    }
    out
}

fn line_of(bytes: &[u8], pos: usize) -> usize {
    let pos = pos.min(bytes.len());
    bytes[..pos].iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SUBJOB: &str = r#"<root>
 <class name="Job" version="1.6" category="jobs">
    <attribute name="outputsandbox"> 
       <sequence>
       </sequence>
    </attribute>
    <attribute name="comment"> 
        <value>'Tom\'s "quoted" &lt;comment&gt; &amp; ampersand, unicode éü✓'</value>
    </attribute>
    <attribute name="id"> 
        <value>0</value>
    </attribute>
    <attribute name="application">
          <class name="Executable" version="2.0" category="applications">
             <attribute name="exe"> 
                      <class name="File" version="1.1" category="files">
                         <attribute name="name"> 
                             <value>'/home/user/inputs/small/run.sh'</value>
                         </attribute>
                      </class>
             </attribute>
             <attribute name="args"> 
                <sequence>
                   <value>'alpha'</value>

                    <value>9</value>
                </sequence>
             </attribute>
             <attribute name="env"> 
                 <value>{'WEIRD': 'a&amp;b&lt;c&gt;"d\'e', 'EMPTY': ''}</value>
             </attribute>
          </class>
    </attribute>
 </class>
</root>

"#;

    #[test]
    fn reads_the_grammar() {
        let o = parse(SUBJOB.as_bytes()).unwrap();
        assert_eq!((o.class.as_str(), o.category.as_str()), ("Job", "jobs"));
        assert_eq!(o.schema_version(), Some((1, 6)));
        assert_eq!(o.get("outputsandbox"), Some(&Node::Seq(vec![])));
        assert_eq!(
            o.str("comment"),
            Some("Tom's \"quoted\" <comment> & ampersand, unicode éü✓")
        );
        assert_eq!(o.int("id"), Some(0));
        let app = o.object("application").unwrap();
        assert_eq!(
            app.object("exe").unwrap().str("name"),
            Some("/home/user/inputs/small/run.sh")
        );
        assert_eq!(
            app.get("args"),
            Some(&Node::Seq(vec![
                Node::Value(PyValue::Str("alpha".into())),
                Node::Value(PyValue::Int(9))
            ]))
        );
        let PyValue::Dict(env) = app.value("env").unwrap() else {
            panic!()
        };
        assert_eq!(env[0].1, PyValue::Str("a&b<c>\"d'e".into()));
    }

    #[test]
    fn reads_values_the_way_ganga_does() {
        // A literal "&lt;" in a Python string is written "&amp;lt;"; Ganga unescapes twice.
        let xml = "<root><class name=\"X\" version=\"1.0\" category=\"c\"><attribute name=\"a\"><value>'&amp;lt;b&amp;gt;'</value></attribute></class></root>";
        assert_eq!(parse(xml.as_bytes()).unwrap().str("a"), Some("<b>"));
        assert_eq!(
            read_value("{'n': 12L}").unwrap(),
            PyValue::Dict(vec![(PyValue::Str("n".into()), PyValue::Int(12))])
        );
        assert_eq!(drop_py2_long_before_brace("'é1L}'"), "'é1}'");
        let cdata = "<root><class name=\"X\" version=\"1.0\" category=\"c\"><attribute name=\"a\"><value><![CDATA['x']]>&#65;</value></attribute></class></root>";
        assert!(parse(cdata.as_bytes()).is_err(), "'x'A is not a literal");
    }

    #[test]
    fn damage_is_an_error_with_a_line() {
        let truncated = &SUBJOB[..SUBJOB.len() / 2];
        let e = parse(truncated.as_bytes()).unwrap_err();
        assert!(e.message.contains("truncated") || e.line > 1, "{e}");
        let e = parse(
            SUBJOB
                .replace(
                    "</attribute>\n    <attribute name=\"id\">",
                    "<attribute name=\"id\">",
                )
                .as_bytes(),
        )
        .unwrap_err();
        assert!(e.line > 1, "{e}");
        assert!(parse(b"").is_err());
        assert!(parse(b"<root></root>").is_err());
        assert!(parse(b"\xff\xfe").is_err());
        let bad_value = SUBJOB.replace("<value>0</value>", "<value>0 0</value>");
        let e = parse(bad_value.as_bytes()).unwrap_err();
        assert_eq!(e.line, 11, "{e}");
        assert!(
            parse(
                SUBJOB
                    .replace(
                        "</class>\n</root>",
                        "</class><class name=\"Y\" version=\"1.0\" category=\"c\"></class>\n</root>"
                    )
                    .as_bytes()
            )
            .is_err()
        );
    }
}
