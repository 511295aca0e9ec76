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
    let name = f.need("name")?.text("name")?;
    let status = status(f.need("status")?.uint("status")?)?;
    let backend = f.need("backend")?.text("backend")?;
    let application = f.need("application")?.text("application")?;
    let subjobs = get_counts(f.need("counts")?)?;
    let i = f.need("exit code")?;
    let exit_code = get_exit_code(i)?;
    let i = f.need("created")?;
    let created = if i.is_null()? {
        None
    } else {
        Some(Timestamp(i.int("created")?))
    };
    let i = f.need("updated")?;
    let updated = match i.header()? {
        Header::Simple(ciborium_ll::simple::NULL) => None,
        Header::Array(Some(1)) => Some(Timestamp(i.int("updated")?)),
        h => {
            i.dec.push(h);
            let d = i.int("updated")?;
            Some(Timestamp(
                created.map_or(0, |c| c.as_millis()).wrapping_add(d),
            ))
        }
    };
    let comment = f.need("comment")?.text("comment")?;
    f.close()?;
    input.end("summary")?;
    Ok(JobSummary {
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
    })
}
