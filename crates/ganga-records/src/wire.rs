//! Serde adapters: records as CBOR byte strings, for the plugin protocol's messages
//! (`#[serde(with = "ganga_records::packed_job")]` and the like).

use crate::batch::SubjobBatch;
use crate::cbor::{CodecError, In, Out};
use crate::job::{decode_job, encode_job, get_opt_text, put_opt_text};
use crate::run::{get_exit_code, get_run, put_run};
use crate::summary::{decode_summary, encode_summary};
use crate::times::{get_counts, put_counts, status};

/// Serde for `Vec<Subjob>` as a packed [`SubjobBatch`] (a CBOR byte string), for the
/// protocol: `#[serde(with = "ganga_records::packed_subjobs")]`.
pub mod packed_subjobs {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::SubjobBatch;
    use ganga_core::Subjob;

    pub fn serialize<S: Serializer>(subjobs: &[Subjob], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&SubjobBatch::pack(subjobs).encode())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Subjob>, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        let batch = SubjobBatch::decode(&bytes).map_err(D::Error::custom)?;
        batch
            .unpack()
            .map_err(|(i, e)| D::Error::custom(format!("subjob {i}: {e}")))
    }
}

impl serde::Serialize for SubjobBatch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.encode())
    }
}

impl<'de> serde::Deserialize<'de> for SubjobBatch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let bytes = <serde_bytes::ByteBuf as serde::Deserialize>::deserialize(d)?;
        SubjobBatch::decode(&bytes).map_err(serde::de::Error::custom)
    }
}

/// Serde for a [`Job`] as its compact record (a CBOR byte string), for the protocol.
pub mod packed_job {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{decode_job, encode_job};
    use ganga_core::Job;

    /// The id travels in front of the record, which does not hold it.
    pub fn serialize<S: Serializer>(job: &Job, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = job.id.to_be_bytes().to_vec();
        encode_job(job, &mut buf);
        s.serialize_bytes(&buf)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Job, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        let (id, record) = bytes
            .split_first_chunk::<8>()
            .ok_or_else(|| D::Error::custom("a job record without its id"))?;
        decode_job(u64::from_be_bytes(*id), record).map_err(D::Error::custom)
    }
}

/// Serde for a [`crate::RunUpdate`] as a compact record `[job, revision, run, counts]`.
pub mod packed_run {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{In, Out, get_counts, get_run, put_counts, put_run};
    use ganga_core::RunUpdate;

    pub fn serialize<S: Serializer>(u: &RunUpdate, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = Vec::with_capacity(96);
        let mut out = Out::new(&mut buf);
        out.array(4);
        out.uint(u.job);
        out.uint(u.revision);
        put_run(&mut out, &u.run);
        put_counts(&mut out, &u.subjobs);
        s.serialize_bytes(&buf)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RunUpdate, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        let mut input = In::new(&bytes);
        (|| {
            if input.array("run update")? != 4 {
                return Err(super::CodecError::new("run update: not 4 items"));
            }
            let job = input.uint("job")?;
            let revision = input.uint("revision")?;
            let run = get_run(&mut input)?;
            let subjobs = get_counts(&mut input)?;
            input.end("run update")?;
            Ok(RunUpdate {
                job,
                revision,
                run,
                subjobs,
            })
        })()
        .map_err(D::Error::custom)
    }
}

/// Serde for an optional [`Job`], as [`packed_job`].
pub mod packed_opt_job {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use ganga_core::Job;

    #[derive(Serialize, Deserialize)]
    struct Packed(#[serde(with = "super::packed_job")] Job);

    pub fn serialize<S: Serializer>(job: &Option<Job>, s: S) -> Result<S::Ok, S::Error> {
        job.as_ref().map(|j| Packed(j.clone())).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Job>, D::Error> {
        Ok(Option::<Packed>::deserialize(d)?.map(|p| p.0))
    }
}

/// Serde for a listing of summaries, each as its compact record, for the protocol:
/// `[id, record]` for a readable one and `[id, error]` for one that is not.
pub mod packed_summaries {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{In, Out, decode_summary, encode_summary};
    use ganga_core::SummaryEntry;

    pub fn serialize<S: Serializer>(entries: &[SummaryEntry], s: S) -> Result<S::Ok, S::Error> {
        let mut buf = Vec::with_capacity(entries.len() * 64);
        let mut record = Vec::with_capacity(128);
        let mut out = Out::new(&mut buf);
        out.array(entries.len());
        for e in entries {
            out.array(2);
            match e {
                SummaryEntry::Readable(summary) => {
                    out.uint(summary.id);
                    record.clear();
                    encode_summary(summary, &mut record);
                    out.bytes(&record);
                }
                SummaryEntry::Unreadable { id, error } => {
                    out.uint(*id);
                    out.text(error);
                }
            }
        }
        s.serialize_bytes(&buf)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SummaryEntry>, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        let mut input = In::new(&bytes);
        let n = input.array("summaries").map_err(D::Error::custom)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let entry = (|| {
                if input.array("summary entry")? != 2 {
                    return Err(super::CodecError::new("summary entry: not [id, record]"));
                }
                let id = input.uint("summary id")?;
                Ok(match input.header()? {
                    ciborium_ll::Header::Bytes(Some(len)) => {
                        input.dec.push(ciborium_ll::Header::Bytes(Some(len)));
                        let record = input.bytes("summary")?;
                        // A summary that does not decode is listed as unreadable.
                        match decode_summary(id, &record) {
                            Ok(s) => SummaryEntry::Readable(s),
                            Err(e) => SummaryEntry::Unreadable {
                                id,
                                error: e.to_string(),
                            },
                        }
                    }
                    ciborium_ll::Header::Text(Some(len)) => SummaryEntry::Unreadable {
                        id,
                        error: input.text_body(len, "summary error")?,
                    },
                    other => {
                        return Err(super::CodecError::new(format!(
                            "summary entry: unexpected {other:?}"
                        )));
                    }
                })
            })()
            .map_err(D::Error::custom)?;
            entries.push(entry);
        }
        input.end("summaries").map_err(D::Error::custom)?;
        Ok(entries)
    }
}

/// Serde for a list of [`crate::UnitUpdate`]s as one compact record (a CBOR byte
/// string), for the protocol: a monitor's cycle sends a hundred thousand of them, which
/// as serde maps with field names cost more to encode and decode than the store takes
/// to apply them. Each update is `[job, subjob or null, seen, run, status or null, at,
/// new_run, id, native_state, exit_code, reason, actual_ce, outputs or null]`.
pub mod packed_unit_updates {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{CodecError, In, Out, get_exit_code, get_opt_text, put_opt_text, status};
    use ganga_core::{JobRef, Timestamp, UnitChange, UnitUpdate};

    pub fn encode(updates: &[UnitUpdate]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(updates.len() * 48);
        let mut out = Out::new(&mut buf);
        out.array(updates.len());
        for u in updates {
            let c = &u.change;
            out.array(13);
            out.uint(u.unit.job);
            match u.unit.subjob {
                Some(i) => out.uint(u64::from(i)),
                None => out.null(),
            }
            out.uint(u.seen.index() as u64);
            out.uint(u64::from(u.run));
            match c.status {
                Some((s, at)) => {
                    out.uint(s.index() as u64);
                    out.int(at.as_millis());
                }
                None => {
                    out.null();
                    out.null();
                }
            }
            out.bool(c.new_run);
            put_opt_text(&mut out, &c.id);
            put_opt_text(&mut out, &c.native_state);
            match c.exit_code {
                Some(code) => out.int(i64::from(code)),
                None => out.null(),
            }
            put_opt_text(&mut out, &c.reason);
            put_opt_text(&mut out, &c.actual_ce);
            match &c.outputs {
                Some(outputs) => out.texts(outputs.iter().map(String::as_str)),
                None => out.null(),
            }
        }
        buf
    }

    pub fn decode(bytes: &[u8]) -> Result<Vec<UnitUpdate>, CodecError> {
        let mut input = In::new(bytes);
        let n = input.array("unit updates")?;
        let mut updates = Vec::with_capacity(n);
        for _ in 0..n {
            if input.array("unit update")? != 13 {
                return Err(CodecError::new("unit update: not 13 items"));
            }
            let job = input.uint("job")?;
            let subjob = if input.is_null()? {
                None
            } else {
                Some(input.small("subjob index")?)
            };
            let seen = status(input.uint("seen status")?)?;
            let run = input.small("run")?;
            let to = if input.is_null()? {
                None
            } else {
                Some(status(input.uint("status")?)?)
            };
            let at = if input.is_null()? {
                None
            } else {
                Some(Timestamp(input.int("time")?))
            };
            let status = match (to, at) {
                (Some(s), Some(at)) => Some((s, at)),
                (None, None) => None,
                _ => return Err(CodecError::new("unit update: a status without its time")),
            };
            let new_run = input.bool("new run")?;
            let id = get_opt_text(&mut input, "backend id")?;
            let native_state = get_opt_text(&mut input, "native state")?;
            let exit_code = get_exit_code(&mut input)?;
            let reason = get_opt_text(&mut input, "reason")?;
            let actual_ce = get_opt_text(&mut input, "actual CE")?;
            let outputs = if input.is_null()? {
                None
            } else {
                Some(input.texts("outputs")?)
            };
            updates.push(UnitUpdate {
                unit: JobRef { job, subjob },
                seen,
                run,
                change: UnitChange {
                    status,
                    new_run,
                    id,
                    native_state,
                    exit_code,
                    reason,
                    actual_ce,
                    outputs,
                },
            });
        }
        input.end("unit updates")?;
        Ok(updates)
    }

    pub fn serialize<S: Serializer>(updates: &[UnitUpdate], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&encode(updates))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<UnitUpdate>, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        decode(&bytes).map_err(D::Error::custom)
    }
}
