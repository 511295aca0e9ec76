//! The readers of Ganga's files against what a damaged disk, a careless edit or a hostile
//! user could put there: arbitrary bytes, valid documents mutated at random, nesting far
//! deeper than Ganga ever writes. Whatever the input, they answer (a value or an error)
//! without panicking, overflowing the stack or running away.
//!
//! The property tests run a few hundred cases with the normal tests; for a long run set
//! `PROPTEST_CASES`, e.g. `PROPTEST_CASES=200000 cargo test --release -p ganga-migrate --lib fuzz`.

use crate::{pyliteral, xml};
use ganga_test_support::fuzz::{mutate, mutation};
use proptest::prelude::*;

/// A Ganga job file in the shapes the grammar allows: nested objects, sequences of values
/// and objects, escaped text, Python 2 longs, calls.
const JOB: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<root>
 <class name="Job" version="1.6" category="jobs">
    <attribute name="id"> <value>12</value> </attribute>
    <attribute name="status"> <value>'completed'</value> </attribute>
    <attribute name="name"> <value>u'Tom\'s &lt;job&gt; &amp; "more" \u00e9'</value> </attribute>
    <attribute name="time">
      <class name="JobTime" version="0.0" category="jobtime">
        <attribute name="timestamps"> <value>{u'new': datetime.datetime(2015, 3, 1, 10, 0, 0, 500999L)}</value> </attribute>
      </class>
    </attribute>
    <attribute name="application">
      <class name="Executable" version="2.0" category="applications">
        <attribute name="exe"> <value>File(name=u'/opt/bin/run', subdir='.')</value> </attribute>
        <attribute name="args"> <sequence> <value>'a'</value> <value>2L</value> <sequence> <value>[1, (2, 3), {4: None}]</value> </sequence> </sequence> </attribute>
        <attribute name="env"> <value>{u'K': u'v', 'N': 1e-3, 'B': b'\x00\xff', 'S': {1, 2}}</value> </attribute>
      </class>
    </attribute>
    <attribute name="outputfiles"> <sequence>
      <class name="LocalFile" version="1.1" category="gangafiles">
        <attribute name="namePattern"> <value>'*.root'</value> </attribute>
      </class>
    </sequence> </attribute>
    <attribute name="comment"> <value><![CDATA['cdata &amp; text']]></value> </attribute>
 </class>
</root>
"#;

/// Values as Ganga's `repr()` writes them.
const LITERALS: &[&str] = &[
    "None",
    "[u'a', 2L, 3.5, True, -7, 0x1f]",
    "{'K': u'v\\u00e9', 'N': (1,), 'S': {1, 2}, 'E': {}}",
    "datetime.datetime(2026, 11, 22, 18, 58, 33, 911865)",
    "DiracFile(namePattern='*.dst', lfn='/lhcb/x', locations=['CERN', \"RAL\"])",
    "'''triple ' quoted''' r'raw\\n' b'\\x00bytes' 'adjacent' \"strings\"",
    "float('inf')",
    "1.5e-300",
];

/// Bits of Ganga's XML grammar and of Python literals, spliced in by the mutations so that
/// they make near-valid documents, not just noise.
const PIECES: &[&str] = &[
    "<sequence>",
    "</sequence>",
    "<class name=\"X\" version=\"1.0\" category=\"c\">",
    "</class>",
    "<attribute name=\"a\">",
    "</attribute>",
    "<value>",
    "</value>",
    "<sequence/>",
    "&amp;",
    "&#0;",
    "&#xD800;",
    "&bogus;",
    "<![CDATA[",
    "]]>",
    "[",
    "(",
    "{",
    "'",
    "\"\"\"",
    "\\x",
    "\\u12",
    "9L}",
    "1e99999",
    "\u{fffe}",
    "é",
];

/// Uses everything a parsed object offers, as the migration does.
fn exercise(o: &xml::Object) {
    let mut n = 0usize;
    o.walk(&mut |obj| {
        n += obj.attrs.len();
        let _ = obj.schema_version();
        for (_, node) in &obj.attrs {
            if let xml::Node::Value(v) = node {
                let _ = v.to_string();
                let _ = v.py_str();
            }
        }
    });
    let _ = format!("{o:?}");
}

proptest! {
    #[test]
    fn the_xml_reader_answers_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(o) = xml::parse(&bytes) {
            exercise(&o);
        }
    }

    #[test]
    fn the_xml_reader_answers_any_mutation_of_a_job(
        mutations in prop::collection::vec(mutation(PIECES), 1..24)
    ) {
        let bytes = mutate(JOB.as_bytes().to_vec(), &mutations);
        if let Ok(o) = xml::parse(&bytes) {
            exercise(&o);
        }
    }

    #[test]
    fn the_literal_reader_answers_any_text(text in "\\PC{0,512}") {
        if let Ok(v) = pyliteral::parse(&text) {
            let _ = v.to_string();
        }
        let _ = xml::read_value(&text);
    }

    #[test]
    fn the_literal_reader_answers_any_mutation_of_a_literal(
        which in 0..LITERALS.len(),
        mutations in prop::collection::vec(mutation(PIECES), 1..12)
    ) {
        let bytes = mutate(LITERALS[which].as_bytes().to_vec(), &mutations);
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(v) = pyliteral::parse(&text) {
            let _ = v.to_string();
            let _ = v.py_str();
        }
    }
}

/// Nesting far deeper than Ganga writes is an error, not a stack overflow (in parsing,
/// walking, printing or dropping the result).
#[test]
fn deep_literal_nesting_is_refused_not_a_stack_overflow() {
    let depth = 200_000;
    for (open, close) in [("[", "]"), ("(", ",)"), ("{1: ", "}"), ("f(", ")")] {
        let text = format!("{}1{}", open.repeat(depth), close.repeat(depth));
        let err = pyliteral::parse(&text).expect_err("too deep");
        assert!(err.to_string().contains("nested too deeply"), "{err}");
    }
}

#[test]
fn deep_xml_nesting_is_refused_not_a_stack_overflow() {
    let depth = 200_000;
    let wrap = |open: &str, close: &str| {
        format!(
            "<root><class name=\"Job\" version=\"1.0\" category=\"jobs\"><attribute name=\"a\">{}<value>1</value>{}</attribute></class></root>",
            open.repeat(depth),
            close.repeat(depth)
        )
    };
    for doc in [
        wrap("<sequence>", "</sequence>"),
        wrap(
            "<class name=\"X\" version=\"1.0\" category=\"c\"><attribute name=\"a\">",
            "</attribute></class>",
        ),
    ] {
        let err = xml::parse(doc.as_bytes()).expect_err("too deep");
        assert!(err.to_string().contains("nested too deeply"), "{err}");
    }
    // An unclosed run of openings is refused as early.
    let doc = format!(
        "<root><class name=\"Job\" version=\"1.0\" category=\"jobs\"><attribute name=\"a\">{}",
        "<sequence>".repeat(depth)
    );
    assert!(xml::parse(doc.as_bytes()).is_err());
}

/// The deepest nesting Ganga's own objects need is read.
#[test]
fn nesting_as_deep_as_ganga_writes_is_read() {
    let depth = 50;
    let text = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    assert!(pyliteral::parse(&text).is_ok());
    let doc = format!(
        "<root><class name=\"Job\" version=\"1.0\" category=\"jobs\"><attribute name=\"a\">{}<value>1</value>{}</attribute></class></root>",
        "<sequence>".repeat(depth),
        "</sequence>".repeat(depth)
    );
    let o = xml::parse(doc.as_bytes()).expect("read");
    exercise(&o);
}
