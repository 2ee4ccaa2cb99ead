//! Naming return addresses from the program's own DWARF, on Linux, reading
//! as little of it as it can: the program's file is mapped once per call
//! site (only the pages read count in memory, and only until it is
//! unmapped), `.debug_aranges` says which compilation unit holds an
//! address, and that unit alone is read: its functions and inlined calls
//! around the address, and its line table up to the address. Nothing is
//! kept once the frames are named.

use std::fs::File;

use gimli::{AttributeValue, EndianSlice, RunTimeEndian, SectionId, Unit};
use object::{Object, ObjectSection, ObjectSegment};

use super::{Symbol, relative};

type R<'a> = EndianSlice<'a, RunTimeEndian>;
type Entry<'a> = gimli::DebuggingInformationEntry<R<'a>>;

/// Where the running program's file is mapped: `[start, end)` shows it
/// from `offset`. Frames elsewhere (the C library, the loader) are never
/// user code.
struct Mapping {
    start: usize,
    end: usize,
    offset: usize,
}

/// This process's mappings of its own program file, from `/proc/self/maps`.
fn program_mappings() -> Vec<Mapping> {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else { return Vec::new() };
    let exe = exe.to_string_lossy();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(6, ' ');
            let (range, _perms, offset) = (fields.next()?, fields.next()?, fields.next()?);
            let path = fields.nth(2)?.trim_start();
            // A program replaced on disk since it started shows ` (deleted)`.
            (path == exe || path.strip_suffix(" (deleted)") == Some(&*exe)).then_some(())?;
            let (start, end) = range.split_once('-')?;
            Some(Mapping {
                start: usize::from_str_radix(start, 16).ok()?,
                end: usize::from_str_radix(end, 16).ok()?,
                offset: usize::from_str_radix(offset, 16).ok()?,
            })
        })
        .collect()
}

/// Calls `each` with the symbols of `frames`, innermost first, until it
/// returns `false`. Frames outside the program's own file are skipped;
/// frames in code without debug information are named by its symbol
/// table.
pub(super) fn symbols(frames: &[usize], each: &mut dyn FnMut(&Symbol) -> bool) {
    let maps = program_mappings();
    if maps.is_empty() {
        return;
    }
    // `/proc/self/exe` is the running program's own file even if another
    // was put at its path since.
    let Ok(file) = File::open("/proc/self/exe") else { return };
    // SAFETY: a read-only private mapping of the running program's file,
    // which no one may write while it runs (the kernel refuses with
    // `ETXTBSY`); a program put in its place is another file.
    let Ok(map) = (unsafe { memmap2::Mmap::map(&file) }) else { return };
    let Ok(elf) = object::File::parse(&*map) else { return };
    let endian = if elf.is_little_endian() { RunTimeEndian::Little } else { RunTimeEndian::Big };
    // Compressed sections are not read: their frames get the symbol
    // table's names.
    let load = |id: SectionId| -> Result<&[u8], gimli::Error> {
        Ok(elf.section_by_name(id.name()).and_then(|s| s.data().ok()).filter(|_| !compressed(&elf, id)).unwrap_or(&[]))
    };
    let Ok(sections) = gimli::DwarfSections::load(load) else { return };
    let dwarf = sections.borrow(|section| EndianSlice::new(section, endian));
    let mut names = None;
    for (i, &ip) in frames.iter().enumerate() {
        // A return address is past its call: look up the call itself.
        let ip = if i == 0 { ip } else { ip.saturating_sub(1) };
        let Some(map) = maps.iter().find(|m| (m.start..m.end).contains(&ip)) else { continue };
        let Some(address) = address(&elf, (ip - map.start).checked_add(map.offset)) else { continue };
        let go_on = match frames_at(&dwarf, address) {
            Some(symbols) => symbols.iter().all(&mut *each),
            // No debug information for it: the symbol table's name.
            None => match names.get_or_insert_with(|| elf.symbol_map()).containing(address) {
                Some(symbol) => each(&Symbol { function: demangle(symbol.name()), place: None }),
                None => true,
            },
        };
        if !go_on {
            return;
        }
    }
}

/// Whether a section is compressed (`SHF_COMPRESSED`, or a `.zdebug_` one).
fn compressed(elf: &object::File<'_>, id: SectionId) -> bool {
    elf.section_by_name(id.name())
        .is_some_and(|s| s.compressed_file_range().is_ok_and(|r| r.format != object::CompressionFormat::None))
}

/// The link-time address of a file offset, by the segment that maps it.
fn address(elf: &object::File<'_>, file_offset: Option<usize>) -> Option<u64> {
    let file_offset = u64::try_from(file_offset?).ok()?;
    elf.segments().find_map(|segment| {
        let (offset, size) = segment.file_range();
        let inside = file_offset >= offset && file_offset - offset < size;
        inside.then(|| segment.address().checked_add(file_offset - offset)).flatten()
    })
}

fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}

/// The functions around `address`, innermost first: the inlined calls, then
/// the function they were inlined into, each with its place.
fn frames_at<'a>(dwarf: &gimli::Dwarf<R<'a>>, address: u64) -> Option<Vec<Symbol>> {
    let unit = unit_of(dwarf, address)?;
    let comp_dir = unit.comp_dir.map(|d| d.to_string_lossy().into_owned()).unwrap_or_default();
    // Outermost first: (function name, call file, call line) of each.
    let mut chain: Vec<(String, u64, u32)> = Vec::new();
    let mut tree = unit.entries_tree(None).ok()?;
    walk(dwarf, &unit, tree.root().ok()?, address, &mut chain, 0).ok()?;
    if chain.is_empty() {
        return None;
    }
    let file = |index: u64| -> Option<String> {
        let program = unit.line_program.as_ref()?;
        let header = program.header();
        let entry = header.file(index)?;
        let mut path = String::new();
        if let Some(dir) = entry.directory(header) {
            path.push_str(&dwarf.attr_string(&unit, dir).ok()?.to_string_lossy());
        }
        let name = dwarf.attr_string(&unit, entry.path_name()).ok()?.to_string_lossy().into_owned();
        if name.starts_with('/') || path.is_empty() {
            path = name;
        } else {
            path = format!("{}/{name}", path.trim_end_matches('/'));
        }
        Some(relative(&path, &comp_dir))
    };
    let innermost = line_at(&unit, address).and_then(|(index, line)| Some((file(index)?, line)));
    let mut symbols = Vec::with_capacity(chain.len());
    for (depth, (function, _, _)) in chain.iter().enumerate().rev() {
        let place = match chain.get(depth + 1) {
            // Inlined into this one: the call's place is where it stands.
            Some((_, call_file, call_line)) => file(*call_file).map(|f| (f, *call_line)),
            None => innermost.clone(),
        };
        symbols.push(Symbol { function: function.clone(), place });
    }
    Some(symbols)
}

/// The compilation unit whose code holds `address`, by `.debug_aranges`;
/// by each unit's own ranges only in a program that has none (reading
/// every unit is what this module exists to avoid).
fn unit_of<'a>(dwarf: &gimli::Dwarf<R<'a>>, address: u64) -> Option<Unit<R<'a>>> {
    let mut headers = dwarf.debug_aranges.headers();
    let mut any = false;
    while let Ok(Some(header)) = headers.next() {
        any = true;
        let mut entries = header.entries();
        while let Ok(Some(entry)) = entries.next() {
            let range = entry.range();
            if (range.begin..range.end).contains(&address) {
                let unit = dwarf.debug_info.header_from_offset(header.debug_info_offset()).ok()?;
                return dwarf.unit(unit).ok();
            }
        }
    }
    if any {
        return None;
    }
    let mut units = dwarf.units();
    while let Ok(Some(header)) = units.next() {
        let Ok(unit) = dwarf.unit(header) else { continue };
        let Ok(mut ranges) = dwarf.unit_ranges(&unit) else { continue };
        while let Ok(Some(range)) = ranges.next() {
            if (range.begin..range.end).contains(&address) {
                return Some(unit);
            }
        }
    }
    None
}

/// Whether `entry`'s code holds `address`.
fn holds<'a>(dwarf: &gimli::Dwarf<R<'a>>, unit: &Unit<R<'a>>, entry: &Entry<'a>, address: u64) -> bool {
    let Ok(mut ranges) = dwarf.die_ranges(unit, entry) else { return false };
    while let Ok(Some(range)) = ranges.next() {
        if (range.begin..range.end).contains(&address) {
            return true;
        }
    }
    false
}

/// How deep [`walk`] goes into a unit's tree: far past what a compiler
/// nests, short of what a stack holds.
const MAX_DEPTH: u32 = 128;

/// Finds the functions and inlined calls around `address` below `node`,
/// outermost first.
fn walk<'a>(
    dwarf: &gimli::Dwarf<R<'a>>,
    unit: &Unit<R<'a>>,
    node: gimli::EntriesTreeNode<'_, '_, R<'a>>,
    address: u64,
    chain: &mut Vec<(String, u64, u32)>,
    depth: u32,
) -> gimli::Result<()> {
    if depth >= MAX_DEPTH {
        return Ok(());
    }
    let mut children = node.children();
    while let Some(child) = children.next()? {
        let entry = child.entry();
        match entry.tag() {
            gimli::DW_TAG_subprogram | gimli::DW_TAG_inlined_subroutine => {
                if !holds(dwarf, unit, entry, address) {
                    continue;
                }
                let name = name(dwarf, unit, entry, 8).unwrap_or_else(|| "?".to_owned());
                let call_file = match entry.attr_value(gimli::DW_AT_call_file) {
                    Some(AttributeValue::FileIndex(index)) => index,
                    Some(value) => value.udata_value().unwrap_or(0),
                    None => 0,
                };
                let call_line = entry.attr_value(gimli::DW_AT_call_line).and_then(|v| v.udata_value()).unwrap_or(0);
                chain.push((name, call_file, u32::try_from(call_line).unwrap_or(0)));
                return walk(dwarf, unit, child, address, chain, depth + 1);
            }
            gimli::DW_TAG_lexical_block if holds(dwarf, unit, entry, address) => {
                return walk(dwarf, unit, child, address, chain, depth + 1);
            }
            // Where Rust nests its functions.
            gimli::DW_TAG_namespace
            | gimli::DW_TAG_structure_type
            | gimli::DW_TAG_union_type
            | gimli::DW_TAG_enumeration_type
            | gimli::DW_TAG_variant_part
            | gimli::DW_TAG_variant => {
                let before = chain.len();
                walk(dwarf, unit, child, address, chain, depth + 1)?;
                if chain.len() > before {
                    return Ok(());
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A function's name: its linkage name demangled, else its own name,
/// through the abstract instance or declaration it refers to.
fn name<'a>(dwarf: &gimli::Dwarf<R<'a>>, unit: &Unit<R<'a>>, entry: &Entry<'a>, hops: u8) -> Option<String> {
    for attr in [gimli::DW_AT_linkage_name, gimli::DW_AT_MIPS_linkage_name] {
        if let Some(value) = entry.attr_value(attr) {
            return Some(demangle(&dwarf.attr_string(unit, value).ok()?.to_string_lossy()));
        }
    }
    let own = entry.attr_value(gimli::DW_AT_name).and_then(|v| dwarf.attr_string(unit, v).ok());
    if hops > 0 {
        for attr in [gimli::DW_AT_abstract_origin, gimli::DW_AT_specification] {
            match entry.attr_value(attr) {
                Some(AttributeValue::UnitRef(offset)) => {
                    let origin = unit.entry(offset).ok()?;
                    return name(dwarf, unit, &origin, hops - 1);
                }
                Some(AttributeValue::DebugInfoRef(offset)) => {
                    let mut units = dwarf.units();
                    while let Ok(Some(header)) = units.next() {
                        let Some(local) = offset.to_unit_offset(&header) else { continue };
                        let other = dwarf.unit(header).ok()?;
                        let origin = other.entry(local).ok()?;
                        return name(dwarf, &other, &origin, hops - 1);
                    }
                    return None;
                }
                _ => {}
            }
        }
    }
    own.map(|n| n.to_string_lossy().into_owned())
}

/// The file index and line of `address` in the unit's line table.
fn line_at(unit: &Unit<R<'_>>, address: u64) -> Option<(u64, u32)> {
    let mut rows = unit.line_program.clone()?.rows();
    let mut previous: Option<(u64, u64, u32)> = None;
    while let Ok(Some((_, row))) = rows.next_row() {
        if let Some((from, file, line)) = previous
            && (from..row.address()).contains(&address)
        {
            return Some((file, line));
        }
        previous = if row.end_sequence() {
            None
        } else {
            let line = row.line().map_or(0, |l| u32::try_from(l.get()).unwrap_or(0));
            Some((row.address(), row.file_index(), line))
        };
    }
    None
}
