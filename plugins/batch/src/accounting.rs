//! Grid Engine's accounting file, read incrementally: where a job that has left `qstat`
//! without an exit record (deleted, killed by a limit, never started) says how it ended.
//!
//! The file is append-only and can be large on a real cell (`qacct` re-reads all of it
//! per call), so it is read from where the last read stopped, only whole lines, keeping
//! only this home's jobs. A file that shrank or was replaced (rotated) is read again
//! from its start.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;

use crate::flavour::sge::{AccountingRecord, parse_accounting_line};

#[derive(Debug)]
pub(crate) struct Accounting {
    path: PathBuf,
    /// Job names of this home start with this (`<tag>.`).
    prefix: String,
    /// Where the next read starts, in the file with this inode.
    offset: u64,
    inode: u64,
    /// This home's records, by unit id; a later record of an id (a rerun) replaces an
    /// earlier one.
    records: HashMap<String, AccountingRecord>,
    /// Whether a missing or unreadable file has been reported already.
    warned: bool,
}

impl Accounting {
    pub(crate) fn new(path: PathBuf, tag: &str) -> Accounting {
        Accounting {
            path,
            prefix: format!("{tag}."),
            offset: 0,
            inode: 0,
            records: HashMap::new(),
            warned: false,
        }
    }

    /// Reads what was appended since the last call. A file that cannot be read is
    /// reported once and then leaves the records as they are.
    pub(crate) fn refresh(&mut self) {
        match self.read_new() {
            Ok(()) => self.warned = false,
            Err(e) => {
                if !self.warned {
                    tracing::warn!(
                        "batch backend: cannot read Grid Engine's accounting file {}: {e}; \
                         jobs that end without an exit record are decided without it",
                        self.path.display()
                    );
                    self.warned = true;
                }
            }
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<&AccountingRecord> {
        self.records.get(id)
    }

    fn read_new(&mut self) -> io::Result<()> {
        let mut file = File::open(&self.path)?;
        let meta = file.metadata()?;
        if meta.ino() != self.inode || meta.len() < self.offset {
            self.inode = meta.ino();
            self.offset = 0;
            self.records.clear();
        }
        file.seek(SeekFrom::Start(self.offset))?;
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 || line.last() != Some(&b'\n') {
                // The end, or a line still being written: read it whole next time.
                break;
            }
            self.offset += n as u64;
            let text = String::from_utf8_lossy(&line);
            if !text.contains(&self.prefix) {
                continue;
            }
            match parse_accounting_line(&text) {
                Ok(Some(record)) if record.job_name.starts_with(&self.prefix) => {
                    self.records.insert(record.id.clone(), record);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!("batch backend: {}: {e}", self.path.display()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn reads_what_was_appended_and_whole_lines_only() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("accounting");
        let fixture = crate::flavour::testing::fixture("sge/accounting");
        std::fs::write(&path, &fixture).expect("written");
        let mut acct = Accounting::new(path.clone(), "ganga-rec2");
        acct.refresh();
        assert_eq!(acct.get("8.1").map(|r| r.exit_status), Some(3));
        assert_eq!(acct.get("7.2").map(|r| r.failed), Some(100));
        assert!(acct.get("1.1").is_none(), "another home's job");

        // A line being written (no newline yet) is left for the next read.
        let line = fixture
            .lines()
            .find(|l| l.contains(":ganga-rec2.kC:8:"))
            .expect("job 8 is in the fixture")
            .replace(":ganga-rec2.kC:8:", ":ganga-rec2.kZ:30:");
        let (head, tail) = line.split_at(line.len() / 2);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        write!(f, "{head}").expect("write");
        f.flush().expect("flush");
        acct.refresh();
        assert!(acct.get("30.1").is_none());
        writeln!(f, "{tail}").expect("write");
        f.flush().expect("flush");
        acct.refresh();
        assert_eq!(acct.get("30.1").map(|r| r.exit_status), Some(3));

        // Rotated: a new, shorter file is read from its start.
        std::fs::remove_file(&path).expect("removed");
        std::fs::write(&path, "# Version: 8.1.9\n").expect("written");
        acct.refresh();
        assert!(acct.get("8.1").is_none());
    }

    #[test]
    fn a_missing_file_changes_nothing() {
        let mut acct = Accounting::new(PathBuf::from("/no/such/accounting"), "t");
        acct.refresh();
        acct.refresh();
        assert!(acct.get("1.1").is_none());
    }
}
