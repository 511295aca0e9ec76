use ciborium_ll::Header;

use ganga_core::{JobId, JobSummary, Timestamp};

use crate::cbor::{Fields, In, Out, Result};
use crate::run::get_exit_code;
use crate::times::{get_counts, put_counts, status};

/// `[name, status, backend, application, counts, exit_code, created, updated - created,
/// comment]`.
pub fn encode_summary(s: &JobSummary, buf: &mut Vec<u8>) {
    let mut out = Out::new(buf);
    out.array(9);
    out.text(&s.name);
    out.uint(s.status.index() as u64);
    out.text(&s.backend);
    out.text(&s.application);
    put_counts(&mut out, &s.subjobs);
    match s.exit_code {
        Some(c) => out.int(i64::from(c)),
        None => out.null(),
    }
    match s.created {
        Some(t) => out.int(t.as_millis()),
        None => out.null(),
    }
    match (s.created, s.updated) {
        (Some(c), Some(u)) => out.int(u.as_millis().wrapping_sub(c.as_millis())),
        (None, Some(u)) => {
            out.array(1);
            out.int(u.as_millis());
        }
        (_, None) => out.null(),
    }
    out.text(&s.comment);
}

pub fn decode_summary(id: JobId, bytes: &[u8]) -> Result<JobSummary> {
    let mut input = In::new(bytes);
    let mut f = Fields::open(&mut input, "summary")?;
    // Read in the record's order; fields are evaluated as they are written.
    let mut summary = JobSummary {
        id,
        name: f.need("name")?.text("name")?,
        status: status(f.need("status")?.uint("status")?)?,
        backend: f.need("backend")?.text("backend")?,
        application: f.need("application")?.text("application")?,
        subjobs: get_counts(f.need("counts")?)?,
        exit_code: get_exit_code(f.need("exit code")?)?,
        created: get_created(f.need("created")?)?,
        // Read next, as it is kept relative to `created`.
        updated: None,
        comment: String::new(),
    };
    summary.updated = get_updated(f.need("updated")?, summary.created)?;
    summary.comment = f.need("comment")?.text("comment")?;
    f.close()?;
    input.end("summary")?;
    Ok(summary)
}

fn get_created(i: &mut In<'_>) -> Result<Option<Timestamp>> {
    Ok(if i.is_null()? {
        None
    } else {
        Some(Timestamp(i.int("created")?))
    })
}

/// `updated`: null, `[updated]` when there is no `created`, or else `updated - created`.
fn get_updated(i: &mut In<'_>, created: Option<Timestamp>) -> Result<Option<Timestamp>> {
    Ok(match i.header()? {
        Header::Simple(ciborium_ll::simple::NULL) => None,
        Header::Array(Some(1)) => Some(Timestamp(i.int("updated")?)),
        h => {
            i.dec.push(h);
            let d = i.int("updated")?;
            Some(Timestamp(
                created.map_or(0, |c| c.as_millis()).wrapping_add(d),
            ))
        }
    })
}

/// The fields in which a summary as stored differs from the one expected, by name (for a
/// store's check to report).
pub fn summary_differences(stored: &JobSummary, expected: &JobSummary) -> Vec<&'static str> {
    // Taken apart so that a field added to `JobSummary` cannot be forgotten here.
    let JobSummary {
        id,
        name,
        status,
        backend,
        application,
        subjobs,
        exit_code,
        created,
        updated,
        comment,
    } = expected;
    [
        (stored.id != *id, "id"),
        (stored.name != *name, "name"),
        (stored.status != *status, "status"),
        (stored.backend != *backend, "backend"),
        (stored.application != *application, "application"),
        (stored.subjobs != *subjobs, "subjobs"),
        (stored.exit_code != *exit_code, "exit_code"),
        (stored.created != *created, "created"),
        (stored.updated != *updated, "updated"),
        (stored.comment != *comment, "comment"),
    ]
    .into_iter()
    .filter_map(|(differs, field)| differs.then_some(field))
    .collect()
}
