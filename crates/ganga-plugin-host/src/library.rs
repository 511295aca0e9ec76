//! Opening a plugin library and checking its declaration before anything else is read.

use std::path::Path;

use ganga_plugin_abi::{
    ABI_MAJOR, ASYNC_FFI_ABI_VERSION, DECL_SIZE, KIND_BACKEND, KIND_STORE, MAGIC, PluginDecl,
    PluginHeader, decl_symbol,
};
use ganga_protocol::PROTOCOL_VERSION;

use crate::{PluginInfo, PluginKind, Refusal};

/// A checked declaration of a library that stays loaded for the life of the process.
pub(crate) struct LoadedLibrary {
    pub(crate) decl: &'static PluginDecl,
    pub(crate) info: PluginInfo,
}

/// Whether a file name looks like a ganga plugin (`libganga_backend_*.so`,
/// `libganga_store_*.so`, or the platform's equivalent).
pub(crate) fn is_plugin_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let Some(stem) = name.strip_suffix(std::env::consts::DLL_SUFFIX) else {
        return false;
    };
    let stem = stem
        .strip_prefix(std::env::consts::DLL_PREFIX)
        .unwrap_or(stem);
    stem.starts_with("ganga_backend_") || stem.starts_with("ganga_store_")
}

/// Opens `path`, finds its declaration and checks it. The library is never unloaded:
/// plugin threads and thread-local destructors may still run its code (see
/// anchors.md §C.3), so unloading is unsound.
pub(crate) fn load(path: &Path) -> Result<LoadedLibrary, Refusal> {
    let refuse = |plugin: Option<String>, reason: String| Refusal {
        path: path.to_owned(),
        plugin,
        reason,
    };
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| refuse(None, "the file name is not valid UTF-8".into()))?;
    let symbol = decl_symbol(stem);
    check_complete(path).map_err(|reason| refuse(None, reason))?;
    let decl_ptr = open_declaration(path, &symbol).map_err(|reason| refuse(None, reason))?;
    // SAFETY: the pointer is the non-null address of the declaration symbol of a library
    // that is never unloaded.
    let header =
        unsafe { checked_header(decl_ptr, &symbol) }.map_err(|reason| refuse(None, reason))?;
    // SAFETY: name and version point at static strings inside the library.
    let (name, version) = unsafe {
        (
            header.name.to_string_lossy(),
            header.version.to_string_lossy(),
        )
    };
    let plugin = Some(name.clone());
    // SAFETY: as for the header, which `checked_header` found to be a ganga plugin's.
    let decl = unsafe { checked_declaration(header, decl_ptr) }
        .map_err(|reason| refuse(plugin.clone(), reason))?;
    let kind = kind_and_entry_point(decl).map_err(|reason| refuse(plugin.clone(), reason))?;
    // SAFETY: static strings inside the library.
    let (protocol, rustc) = unsafe {
        (
            decl.protocol.to_string_lossy(),
            decl.rustc.to_string_lossy(),
        )
    };
    check_protocol(&protocol).map_err(|reason| refuse(plugin, reason))?;
    Ok(LoadedLibrary {
        decl,
        info: PluginInfo {
            name,
            version,
            kind,
            file: Some(path.to_owned()),
            abi: header.abi_major,
            protocol,
            rustc,
        },
    })
}

/// Loads the library and finds the address of its declaration `symbol`, which is never
/// null. From then on the library stays mapped for the declaration's `'static` lifetime.
fn open_declaration(path: &Path, symbol: &str) -> Result<*const PluginDecl, String> {
    let library = open(path).map_err(|e| loader_refusal(&e))?;
    // SAFETY: the symbol is a static `PluginDecl` (or at least its `PluginHeader`, which
    // every ABI version starts with); we only take its address here.
    let decl_ptr: *const PluginDecl = match unsafe {
        library.get::<*const PluginDecl>(symbol.as_bytes())
    } {
        Ok(sym) => *sym,
        Err(_) => {
            return Err(format!(
                "it exports no `{symbol}`: not a ganga plugin, or renamed (a plugin file must keep the name cargo gave it)"
            ));
        }
    };
    if decl_ptr.is_null() {
        return Err(format!("`{symbol}` is null"));
    }
    std::mem::forget(library);
    Ok(decl_ptr)
}

/// The declaration's header, once its magic number says it is a ganga plugin's.
///
/// # Safety
/// `decl_ptr` is the non-null address of a declaration symbol in a library that stays
/// loaded for the rest of the process.
unsafe fn checked_header(
    decl_ptr: *const PluginDecl,
    symbol: &str,
) -> Result<&'static PluginHeader, String> {
    // SAFETY: the header's layout is frozen across ABI versions, and the symbol is at
    // least that large in every ganga plugin; we read nothing past it until abi_major and
    // decl_size say the rest is ours.
    let header: &'static PluginHeader = unsafe { &*decl_ptr.cast::<PluginHeader>() };
    if header.magic != MAGIC {
        return Err(format!(
            "`{symbol}` is not a ganga plugin declaration (bad magic number)"
        ));
    }
    Ok(header)
}

/// The whole declaration, once its header says it is of our ABI and size, and it was
/// built with the same async-ffi and with panics that unwind.
///
/// # Safety
/// As for [`checked_header`], which `header` comes from.
unsafe fn checked_declaration(
    header: &PluginHeader,
    decl_ptr: *const PluginDecl,
) -> Result<&'static PluginDecl, String> {
    if header.abi_major != ABI_MAJOR {
        return Err(format!(
            "it was built for plugin ABI {}, and this ganga speaks plugin ABI {ABI_MAJOR}; rebuild it against ganga-plugin-sdk for ABI {ABI_MAJOR}",
            header.abi_major
        ));
    }
    if header.decl_size < DECL_SIZE {
        return Err(format!(
            "its declaration is {} bytes, smaller than the {DECL_SIZE} of plugin ABI {ABI_MAJOR}",
            header.decl_size
        ));
    }
    // SAFETY: same ABI and at least as large as our PluginDecl: the whole struct is valid.
    let decl: &'static PluginDecl = unsafe { &*decl_ptr };
    if decl.async_ffi_abi != ASYNC_FFI_ABI_VERSION {
        return Err(format!(
            "it uses async-ffi ABI {}, this ganga uses {ASYNC_FFI_ABI_VERSION}",
            decl.async_ffi_abi
        ));
    }
    if decl.panic_unwind != 1 {
        return Err(
            "it was built with panic=abort: a panic in it would end ganga; build it with panic=unwind".into(),
        );
    }
    Ok(decl)
}

/// What kind of plugin it declares, which must have the entry point for the requests of
/// its kind (the other is null).
fn kind_and_entry_point(decl: &PluginDecl) -> Result<PluginKind, String> {
    let kind = match decl.kind {
        KIND_BACKEND => PluginKind::Backend,
        KIND_STORE => PluginKind::Store,
        other => return Err(format!("unknown plugin kind {other}")),
    };
    let answers = match kind {
        PluginKind::Backend => decl.backend_call.is_some(),
        PluginKind::Store => decl.store_call.is_some(),
    };
    if !answers {
        return Err("its declaration has no entry point for the requests of its kind".into());
    }
    Ok(kind)
}

/// Why the dynamic loader refused a library, in its own words (`dlerror`), which name the
/// file and the cause; libloading's own text is only "dlopen failed".
fn loader_refusal(e: &libloading::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("the dynamic loader refused it: {cause}"),
        None => format!("the dynamic loader refused it: {e}"),
    }
}

/// Refuses a library that the dynamic loader would map past the end of its file, as a
/// half-written build leaves one: the loader maps each loadable segment whole, and the
/// first touch of a page beyond the end of the file kills the process with SIGBUS before
/// any error can be returned. So before loading, the ELF headers must parse, and every
/// segment and section must lie within the file. (Reads only the headers.)
#[cfg(all(unix, not(target_vendor = "apple")))]
fn check_complete(path: &Path) -> Result<(), String> {
    use object::elf::{FileHeader32, FileHeader64};
    use object::{Endianness, FileKind, ReadCache};

    let file = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err("it is not a file".to_owned());
    }
    let len = meta.len();
    let data = &ReadCache::new(file);
    let magic = object::ReadRef::read_bytes_at(data, 0, len.min(4))
        .map_err(|()| "cannot read it".to_owned())?;
    let problem = if len == 0 {
        Some("the file is empty".to_owned())
    } else if !object::elf::ELFMAG.starts_with(magic) {
        return Err("it is not an ELF shared library".to_owned());
    } else {
        match FileKind::parse(data) {
            Ok(FileKind::Elf64) => elf_problem::<FileHeader64<Endianness>>(data, len),
            Ok(FileKind::Elf32) => elf_problem::<FileHeader32<Endianness>>(data, len),
            Ok(other) => return Err(format!("it is not an ELF shared library ({other:?})")),
            Err(e) => Some(format!("its ELF header cannot be read ({e})")),
        }
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(format!(
            "the file is truncated or damaged (a half-written build?): {p}; rebuild or reinstall it"
        )),
    }
}

#[cfg(not(all(unix, not(target_vendor = "apple"))))]
fn check_complete(_path: &Path) -> Result<(), String> {
    Ok(())
}

/// What in an ELF file of `len` bytes lies outside it, if anything.
#[cfg(all(unix, not(target_vendor = "apple")))]
fn elf_problem<'data, Elf: object::read::elf::FileHeader>(
    data: impl object::ReadRef<'data>,
    len: u64,
) -> Option<String> {
    use object::read::elf::{ProgramHeader as _, SectionHeader as _};

    let header = match Elf::parse(data) {
        Ok(h) => h,
        Err(e) => return Some(format!("its ELF header cannot be read ({e})")),
    };
    let endian = match header.endian() {
        Ok(e) => e,
        Err(e) => return Some(format!("its ELF header cannot be read ({e})")),
    };
    let past_end = |what: String, (offset, size): (u64, u64)| {
        let end = offset.checked_add(size);
        match end {
            Some(end) if end <= len => None,
            _ => Some(format!(
                "{what} (bytes {offset}..{}) lies past the end of the file ({len} bytes)",
                end.map_or_else(|| "?".to_owned(), |e| e.to_string())
            )),
        }
    };
    let segments = match header.program_headers(endian, data) {
        Ok(s) => s,
        Err(e) => return Some(format!("its program headers cannot be read ({e})")),
    };
    for (i, segment) in segments.iter().enumerate() {
        if let Some(p) = past_end(format!("segment {i}"), segment.file_range(endian)) {
            return Some(p);
        }
    }
    let sections = match header.section_headers(endian, data) {
        Ok(s) => s,
        Err(e) => return Some(format!("its section headers cannot be read ({e})")),
    };
    for (i, section) in sections.iter().enumerate() {
        if let Some(range) = section.file_range(endian)
            && let Some(p) = past_end(format!("section {i}"), range)
        {
            return Some(p);
        }
    }
    None
}

/// A plugin speaking another major version of the protocol (another minor for 0.x) would
/// misread our messages. Within a major version, unknown requests are answered
/// `Unsupported` and unknown fields are ignored, so both directions keep working.
fn check_protocol(plugin: &str) -> Result<(), String> {
    let ours = semver::Version::parse(PROTOCOL_VERSION)
        .map_err(|e| format!("bad host protocol version: {e}"))?;
    let theirs = semver::Version::parse(plugin)
        .map_err(|e| format!("its protocol version `{plugin}` is not a version: {e}"))?;
    let compatible = if ours.major == 0 {
        theirs.major == 0 && theirs.minor == ours.minor
    } else {
        theirs.major == ours.major
    };
    if compatible {
        Ok(())
    } else {
        Err(format!(
            "it speaks protocol {theirs}, incompatible with this ganga's protocol {ours}"
        ))
    }
}

#[cfg(unix)]
fn open(path: &Path) -> Result<libloading::Library, libloading::Error> {
    use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
    // RTLD_NOW: fail here, not at the first call, if a symbol is missing. RTLD_LOCAL: two
    // plugins' copies of the same crates do not interpose on each other.
    // SAFETY: loading runs the library's initialisers; ganga plugins have none beyond
    // Rust's own, and we accept that any plugin is trusted code.
    unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }.map(Into::into)
}

#[cfg(not(unix))]
fn open(path: &Path) -> Result<libloading::Library, libloading::Error> {
    // SAFETY: as above.
    unsafe { libloading::Library::new(path) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_of_another_major_protocol_is_refused_naming_both_versions() {
        let ours = semver::Version::parse(PROTOCOL_VERSION).expect("our version parses");
        assert_eq!(check_protocol(PROTOCOL_VERSION), Ok(()));
        let newer_minor = format!("{}.{}.0", ours.major, ours.minor + 1);
        assert_eq!(check_protocol(&newer_minor), Ok(()));
        // 3.0 sent a job put as one combined record; 4.0 sends its three records.
        for theirs in ["3.0.0", "2.1.0", &format!("{}.0.0", ours.major + 1)] {
            let refusal = check_protocol(theirs).expect_err(theirs);
            assert!(
                refusal.contains(theirs) && refusal.contains(PROTOCOL_VERSION),
                "{refusal}"
            );
        }
        assert!(check_protocol("four").is_err());
    }
}
