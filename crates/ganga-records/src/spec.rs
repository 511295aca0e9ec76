use ciborium_ll::Header;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::PathBuf;

use ganga_core::{
    Application, ArgLists, AutoResubmit, BackendConfig, Executable, JobSpec, Options, Override,
    SplitAttribute, Splitter, SubjobIndex, Value,
};

use crate::cbor::{CodecError, Fields, In, Out, Result};
use crate::job::decode_splitter;
use crate::run::canonical_number;

/// Lists of words (an ArgSplitter's arguments: thousands of lists that share most of
/// their words) as `[table, lists]`: a word used more than once is in `table` and written
/// as `-(k + 1)`; a word that is a plain decimal number is written as that number; any
/// other word as text.
pub(crate) fn put_word_lists(out: &mut Out<'_>, lists: &ArgLists) {
    let mut uses: HashMap<&str, u32> = HashMap::new();
    for w in lists.iter().flatten() {
        *uses.entry(w).or_default() += 1;
    }
    let mut table: Vec<&str> = uses
        .iter()
        .filter(|&(w, &n)| n > 1 && canonical_number(w).is_none())
        .map(|(w, _)| *w)
        .collect();
    table.sort_unstable();
    let refs: HashMap<&str, i64> = table
        .iter()
        .enumerate()
        .map(|(k, w)| (*w, -(k as i64) - 1))
        .collect();
    out.texts(table.iter().copied());
    out.array(lists.len());
    for list in lists.iter() {
        out.array(list.len());
        for w in list {
            if let Some(&r) = refs.get(w) {
                out.int(r);
            } else if let Some(n) = canonical_number(w) {
                out.uint(n);
            } else {
                out.text(w);
            }
        }
    }
}

pub(crate) fn get_word_lists(input: &mut In<'_>) -> Result<ArgLists> {
    let table = input.texts("word table")?;
    let n = input.array("word lists")?;
    let mut lists = ArgLists::new();
    for _ in 0..n {
        get_word_list(input, &table, &mut |w| lists.push_word(w))?;
        lists.end_list();
    }
    Ok(lists)
}

/// One argument list, each word handed to `word` in order: a number, a reference into
/// `table`, or a text.
pub(crate) fn get_word_list(
    input: &mut In<'_>,
    table: &[String],
    word: &mut dyn FnMut(&str),
) -> Result<()> {
    let m = input.array("word list")?;
    let mut text = String::new();
    for _ in 0..m {
        match input.header()? {
            Header::Positive(n) => word(&n.to_string()),
            Header::Negative(k) => word(
                table
                    .get(usize::try_from(k).unwrap_or(usize::MAX))
                    .ok_or_else(|| CodecError::new("word list: a word not in its table"))?,
            ),
            Header::Text(Some(len)) => {
                input.text_into(len, "word", &mut text)?;
                word(&text);
            }
            other => return Err(CodecError::new(format!("word list: unexpected {other:?}"))),
        }
    }
    Ok(())
}

/// The split items (what [`Splitter::item`] gives) of the subjobs `indices` of the
/// splitter encoded in `bytes` ([`encode_splitter`]), decoding those alone (see
/// [`SplitIndex`]). An index the splitter gives no item (beyond its end, or no splitter)
/// is absent from the answer. For a store writing a few subjobs of a master of thousands.
pub fn split_items_of_encoded(
    bytes: &[u8],
    indices: &std::collections::BTreeSet<SubjobIndex>,
) -> Result<BTreeMap<SubjobIndex, Vec<Override>>> {
    let index = SplitIndex::build(bytes)?;
    let mut items = BTreeMap::new();
    for &i in indices {
        if let Some(item) = index.item(bytes, i)? {
            items.insert(i, item);
        }
    }
    Ok(items)
}

/// An encoded splitter ([`encode_splitter`]) read so that one subjob's split item can be
/// decoded alone: for an ArgSplitter, its word table and where each argument list starts
/// (one pass, allocating only those); other splitters, which are small, decoded whole.
#[derive(Debug, Clone)]
pub(crate) enum SplitIndex {
    None,
    Args {
        append: bool,
        table: Vec<String>,
        starts: Vec<u32>,
    },
    Decoded(Splitter),
}

impl SplitIndex {
    pub(crate) fn build(bytes: &[u8]) -> Result<SplitIndex> {
        let mut input = In::new(bytes);
        if input.is_null()? {
            input.end("splitter")?;
            return Ok(SplitIndex::None);
        }
        let n = input.array("splitter")?;
        if (input.uint("splitter kind")?, n) != (0, 4) {
            return Ok(match decode_splitter(bytes)? {
                Some(s) => SplitIndex::Decoded(s),
                None => SplitIndex::None,
            });
        }
        let append = input.bool("append")?;
        let table = input.texts("word table")?;
        let lists = input.array("word lists")?;
        let mut starts = Vec::with_capacity(lists.min(bytes.len()));
        for _ in 0..lists {
            starts.push(u32::try_from(input.dec.offset()).unwrap_or(u32::MAX));
            let m = input.array("word list")?;
            for _ in 0..m {
                match input.header()? {
                    Header::Positive(_) => {}
                    Header::Negative(r) if usize::try_from(r).is_ok_and(|r| r < table.len()) => {}
                    Header::Negative(_) => {
                        return Err(CodecError::new("word list: a word not in its table"));
                    }
                    Header::Text(Some(len)) => input.pass(len, "word")?,
                    other => {
                        return Err(CodecError::new(format!("word list: unexpected {other:?}")));
                    }
                }
            }
        }
        input.end("splitter")?;
        Ok(SplitIndex::Args {
            append,
            table,
            starts,
        })
    }

    /// The split item of subjob `index`; `bytes` are those the index was built from.
    pub(crate) fn item(&self, bytes: &[u8], index: SubjobIndex) -> Result<Option<Vec<Override>>> {
        match self {
            SplitIndex::None => Ok(None),
            SplitIndex::Decoded(s) => s
                .item(index as usize)
                .map_err(|e| CodecError::new(e.to_string())),
            SplitIndex::Args {
                append,
                table,
                starts,
            } => {
                let Some(&start) = starts.get(index as usize) else {
                    return Ok(None);
                };
                let rest = bytes
                    .get(start as usize..)
                    .ok_or_else(|| CodecError::new("word list: beyond the splitter"))?;
                let mut list = Vec::new();
                get_word_list(&mut In::new(rest), table, &mut |w| list.push(w.to_owned()))?;
                Ok(Some(vec![if *append {
                    Override::AppendArgs(list)
                } else {
                    Override::Args(list)
                }]))
            }
        }
    }
}

/// An exit code, or `None` for a null.
/// `[name, comment, [kind, exe, args, env], [backend kind, options], input_files,
/// output_files, splitter, auto_resubmit]`, the last (`[max_attempts,
/// max_failed_fraction]`) left out when the job has none.
/// The spec's fields, with `splitter` in the splitter's place.
pub(crate) fn put_spec(out: &mut Out<'_>, spec: &JobSpec, splitter: Option<&Splitter>) {
    out.array(if spec.auto_resubmit.is_some() { 8 } else { 7 });
    out.text(&spec.name);
    out.text(&spec.comment);
    match &spec.application {
        Application::Executable(e) => {
            out.array(4);
            out.uint(0);
            out.text(&e.exe);
            out.texts(e.args.iter().map(String::as_str));
            out.pairs(e.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
    }
    out.array(2);
    out.text(&spec.backend.kind);
    out.value(&Value::Table(spec.backend.options.clone()));
    let inputs: Vec<String> = spec
        .input_files
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    out.texts(inputs.iter().map(String::as_str));
    out.texts(spec.output_files.iter().map(String::as_str));
    match (splitter, &spec.splitter) {
        (Some(s), _) => put_splitter(out, Some(s)),
        // Kept apart: say that there is one.
        (None, Some(_)) => out.bool(true),
        (None, None) => out.null(),
    }
    if let Some(policy) = &spec.auto_resubmit {
        out.array(2);
        out.uint(u64::from(policy.max_attempts));
        out.value(&Value::Float(policy.max_failed_fraction));
    }
}

pub(crate) fn put_splitter(out: &mut Out<'_>, splitter: Option<&Splitter>) {
    match splitter {
        None => out.null(),
        Some(Splitter::Args { args, append }) => {
            out.array(4);
            out.uint(0);
            out.bool(*append);
            put_word_lists(out, args);
        }
        Some(Splitter::Generic { attributes }) => {
            out.array(2);
            out.uint(1);
            out.array(attributes.len());
            for a in attributes {
                out.array(2);
                out.text(&a.path);
                out.value(&Value::List(a.values.clone()));
            }
        }
    }
}

pub(crate) fn get_splitter(i: &mut In<'_>) -> Result<Option<Splitter>> {
    Ok(if i.is_null()? {
        None
    } else {
        let n = i.array("splitter")?;
        match (i.uint("splitter kind")?, n) {
            (0, 4) => {
                let append = i.bool("append")?;
                let args = get_word_lists(i)?;
                Some(Splitter::Args { args, append })
            }
            (1, 2) => {
                let count = i.array("attributes")?;
                let mut attributes = Vec::with_capacity(count);
                for _ in 0..count {
                    if i.array("attribute")? != 2 {
                        return Err(CodecError::new("splitter attribute is not [path, values]"));
                    }
                    let path = i.text("attribute path")?;
                    let values = match i.value("attribute values", 0)? {
                        Value::List(v) => v,
                        _ => return Err(CodecError::new("splitter values: not a list")),
                    };
                    attributes.push(SplitAttribute { path, values });
                }
                Some(Splitter::Generic { attributes })
            }
            (k, n) => {
                return Err(CodecError::new(format!(
                    "unknown splitter kind {k} of {n} items"
                )));
            }
        }
    })
}

/// A spec, and whether its splitter is kept apart (`true` in its place).
pub(crate) fn get_spec(input: &mut In<'_>) -> Result<(JobSpec, bool)> {
    let mut f = Fields::open(input, "spec")?;
    let name = f.need("name")?.text("name")?;
    let comment = f.need("comment")?.text("comment")?;
    let i = f.need("application")?;
    let n = i.array("application")?;
    let kind = i.uint("application kind")?;
    if kind != 0 || n != 4 {
        return Err(CodecError::new(format!("unknown application kind {kind}")));
    }
    let application = Application::Executable(Executable {
        exe: i.text("exe")?,
        args: i.texts("args")?,
        env: i.pairs("env")?,
    });
    let i = f.need("backend")?;
    if i.array("backend")? != 2 {
        return Err(CodecError::new("spec: backend is not [kind, options]"));
    }
    let kind = i.text("backend kind")?;
    let options: Options = match i.value("backend options", 0)? {
        Value::Table(t) => t,
        _ => return Err(CodecError::new("backend options: not a table")),
    };
    let input_files = f
        .need("input files")?
        .texts("input files")?
        .into_iter()
        .map(PathBuf::from)
        .collect();
    let output_files = f.need("output files")?.texts("output files")?;
    let i = f.need("splitter")?;
    let (splitter, apart) = match i.header()? {
        Header::Simple(ciborium_ll::simple::TRUE) => (None, true),
        h => {
            i.dec.push(h);
            (get_splitter(i)?, false)
        }
    };
    let auto_resubmit = match f.next() {
        None => None,
        Some(i) => {
            if i.array("auto-resubmit policy")? != 2 {
                return Err(CodecError::new(
                    "spec: auto-resubmit policy is not [max_attempts, max_failed_fraction]",
                ));
            }
            let max_attempts = i.small("max_attempts")?;
            let max_failed_fraction = match i.value("max_failed_fraction", 0)? {
                Value::Float(x) => x,
                Value::Integer(n) => n as f64,
                _ => return Err(CodecError::new("max_failed_fraction: not a number")),
            };
            Some(AutoResubmit {
                max_attempts,
                max_failed_fraction,
            })
        }
    };
    f.close()?;
    Ok((
        JobSpec {
            name,
            comment,
            application,
            backend: BackendConfig { kind, options },
            input_files,
            output_files,
            splitter,
            auto_resubmit,
        },
        apart,
    ))
}
