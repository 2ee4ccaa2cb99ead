//! What zen keeps of a MongoDB command: its shape (the command, its
//! collection, and the keys and operators of its filter, pipeline, update,
//! sort and projection; never a value), whether it may write, and the
//! documents its reply returns.

use std::fmt::Write as _;
use std::hash::{DefaultHasher, Hasher};

use mongodb::bson::{Bson, Document};

use crate::fingerprint::MAX_LEN;

/// The parts of a command that make its shape, in the order they are written.
const PARTS: [&str; 11] =
    ["filter", "query", "pipeline", "update", "updates", "deletes", "sort", "projection", "fields", "q", "u"];

/// Distinct shapes written for the elements of one array; past it, `…`.
const MAX_ELEMENTS: usize = 8;

/// Nesting deeper than this is written `{…}`.
const MAX_DEPTH: usize = 12;

/// The longest shape written; past it the rest is hashed, so that two long
/// shapes that differ late still differ (the ` …#` and hash fit in
/// [`MAX_LEN`]).
const LIMIT: usize = MAX_LEN - 16;

/// A command zen knows: its name, the exporters' `operation` label (a fixed
/// set, so a name sent by `run_command` cannot grow a label's values);
/// whether it changes nothing the server keeps (any other may); whether its
/// own key names its collection (another's may be a value: `usersInfo:
/// "ann"`).
struct Known {
    name: &'static str,
    reads: bool,
    on_a_collection: bool,
}

const fn known(name: &'static str, reads: bool, on_a_collection: bool) -> Known {
    Known { name, reads, on_a_collection }
}

const KNOWN: [Known; 30] = [
    known("find", true, true),
    known("insert", false, true),
    known("update", false, true),
    known("delete", false, true),
    known("aggregate", true, true),
    known("findAndModify", false, true),
    known("count", true, true),
    known("distinct", true, true),
    known("getMore", true, false),
    known("killCursors", true, false),
    known("bulkWrite", false, false),
    known("commitTransaction", false, false),
    known("abortTransaction", true, false),
    known("endSessions", true, false),
    known("create", false, true),
    known("drop", false, true),
    known("dropDatabase", false, false),
    known("createIndexes", false, true),
    known("dropIndexes", false, true),
    known("listCollections", true, false),
    known("listIndexes", true, true),
    known("listDatabases", true, false),
    known("collMod", false, true),
    known("renameCollection", false, false),
    known("explain", true, false),
    known("ping", true, false),
    known("hello", true, false),
    known("isMaster", true, false),
    known("buildInfo", true, false),
    known("dbStats", true, false),
];

fn find_known(command_name: &str) -> Option<&'static Known> {
    KNOWN.iter().find(|known| known.name == command_name)
}

/// An update of every document it matches (`multi: true`), or a delete of
/// every one (`limit: 0`).
fn of_many(statement: &Bson) -> bool {
    statement.as_document().is_some_and(|statement| {
        statement.iter().any(|(key, value)| match (key.as_str(), value) {
            ("multi", Bson::Boolean(multi)) => *multi,
            ("limit", Bson::Int32(0)) | ("limit", Bson::Int64(0)) => true,
            _ => false,
        })
    })
}

/// The exporters' name of a command: one of [`KNOWN`], else `other`.
pub(super) fn operation(command_name: &str) -> &'static str {
    find_known(command_name).map_or("other", |known| known.name)
}

/// What zen reads of a command, found in one pass over its keys (a lookup
/// by key hashes it: a dozen of them cost more than the rest of a command's
/// bookkeeping).
pub(super) struct Command<'a> {
    name: &'a str,
    collection: Option<&'a str>,
    /// The values of [`PARTS`], in its order.
    parts: [Option<&'a Bson>; PARTS.len()],
    /// Sent inside a transaction: its writes take effect at its commit.
    in_transaction: bool,
    /// Several documents or statements in one write (an `insert` of many,
    /// `updates`/`deletes` of several or of many documents each).
    many: bool,
}

impl<'a> Command<'a> {
    pub(super) fn read(name: &'a str, command: &'a Document) -> Command<'a> {
        let mut read =
            Command { name, collection: None, parts: [None; PARTS.len()], in_transaction: false, many: false };
        for (i, (key, value)) in command.iter().enumerate() {
            match (key.as_str(), value) {
                // The command's own key names its collection, if a string,
                // for the commands that take one: another's may be a value
                // (`usersInfo: "ann"`).
                (key, Bson::String(collection)) if i == 0 && key == name => {
                    if find_known(name).is_some_and(|known| known.on_a_collection) {
                        read.collection = Some(collection);
                    }
                }
                // A `getMore` names it apart from its cursor.
                ("collection", Bson::String(collection)) => read.collection = Some(collection),
                ("autocommit", _) => read.in_transaction = true,
                ("documents", Bson::Array(documents)) => read.many |= documents.len() > 1,
                (key, value) => {
                    if let Some(at) = part_at(key) {
                        read.parts[at] = Some(value);
                        if let ("updates" | "deletes", Bson::Array(statements)) = (key, value) {
                            read.many |= statements.len() > 1 || statements.iter().any(of_many);
                        }
                    }
                }
            }
        }
        read
    }

    /// Whether a failure the server answers with (`ok: 0`) leaves nothing
    /// done: not for a write of several documents or statements (an
    /// interruption may stop it halfway), an `aggregate` that writes
    /// (`$merge` is not atomic), a `commitTransaction` (an error may come
    /// after the commit), `dropDatabase` or a client `bulkWrite`.
    pub(super) fn fails_whole(&self) -> bool {
        match self.name {
            "commitTransaction" | "dropDatabase" | "bulkWrite" => false,
            "aggregate" => !self.writes(),
            _ => !self.many,
        }
    }

    /// A hash of what [`Self::shape`] reads (the name, the collection, and
    /// the keys and kinds of values of each part): commands alike in it
    /// have one shape, so the shape is written once per structure, not per
    /// command. An array of values hashes alike whatever its length, and a
    /// run of alike documents in an array as one.
    pub(super) fn structure(&self) -> u64 {
        let mut mix = Mix(0);
        mix.bytes(self.name.as_bytes());
        match self.collection {
            Some(collection) => mix.bytes(collection.as_bytes()),
            None => mix.add(u64::MAX),
        }
        for (at, value) in self.parts.iter().enumerate() {
            if let Some(value) = value {
                mix.add(at as u64 + 1);
                mix.add(structure(value, 0));
            }
        }
        mix.0
    }

    fn part(&self, name: &str) -> Option<&'a Bson> {
        part_at(name).and_then(|at| self.parts[at])
    }

    /// Whether the command may change what the server keeps. Inside a
    /// transaction (`autocommit` sent) only `commitTransaction` does: the
    /// others take effect at it. An `aggregate` writes with `$out` or
    /// `$merge`.
    pub(super) fn writes(&self) -> bool {
        match self.name {
            "commitTransaction" => true,
            _ if self.in_transaction => false,
            "aggregate" => {
                let writes = |stage: &Bson| {
                    stage.as_document().is_some_and(|stage| stage.keys().any(|k| k == "$out" || k == "$merge"))
                };
                matches!(self.part("pipeline"), Some(Bson::Array(stages)) if stages.iter().any(writes))
            }
            name => !find_known(name).is_some_and(|known| known.reads),
        }
    }

    /// The shape of the command, into `out` (cleared first): `find users
    /// {status: ?, age: {$gt: ?}} sort {age: ?}`. The collection is kept
    /// where the command names one (a name of the schema, like a table's),
    /// and so are keys and operators; every value is `?`, an array of values
    /// `[?]` whatever its length, and an array of documents the distinct
    /// shapes of its elements.
    pub(super) fn shape(&self, out: &mut String) {
        out.clear();
        let mut shape = Shape { text: std::mem::take(out), hash: DefaultHasher::new(), full: false };
        shape.word(self.name);
        if let Some(collection) = self.collection {
            shape.push(" ");
            shape.path(collection);
        }
        for (part, value) in PARTS.iter().zip(self.parts) {
            if let Some(value) = value {
                shape.push(" ");
                shape.push(part);
                shape.push(" ");
                shape.value(value, 0);
            }
        }
        *out = shape.finish();
    }
}

/// Where `key` is in [`PARTS`]: a `match`, which compares lengths first.
fn part_at(key: &str) -> Option<usize> {
    let at = match key {
        "filter" => 0,
        "query" => 1,
        "pipeline" => 2,
        "update" => 3,
        "updates" => 4,
        "deletes" => 5,
        "sort" => 6,
        "projection" => 7,
        "fields" => 8,
        "q" => 9,
        "u" => 10,
        _ => return None,
    };
    debug_assert_eq!(PARTS[at], key);
    Some(at)
}

/// [`Command::structure`] of one value.
fn structure(value: &Bson, depth: usize) -> u64 {
    let mut mix = Mix(0);
    match value {
        _ if depth >= MAX_DEPTH => mix.add(4),
        Bson::Document(doc) => {
            mix.add(1);
            for (key, value) in doc {
                mix.bytes(key.as_bytes());
                mix.add(structure(value, depth + 1));
            }
        }
        Bson::Array(items) => {
            mix.add(2);
            let (mut last, mut values) = (0, false);
            for item in items {
                if matches!(item, Bson::Document(_) | Bson::Array(_)) {
                    let one = structure(item, depth + 1);
                    if one != last {
                        mix.add(one);
                        last = one;
                    }
                } else {
                    values = true;
                }
            }
            mix.add(u64::from(values));
        }
        _ => mix.add(3),
    }
    mix.0
}

/// The multiply-rotate mix of rustc's `FxHasher`, a word at a time.
struct Mix(u64);

impl Mix {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn bytes(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let tail = chunks.remainder().iter().fold(0u64, |w, &b| (w << 8) | u64::from(b));
        // The length ends it, so `ab`,`c` and `a`,`bc` differ.
        self.add(tail ^ ((bytes.len() as u64) << 56));
    }
}

/// What zen reads of a reply, in one pass over its keys.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Reply {
    /// Documents it returns: a cursor's batch, or the document a
    /// `findAndModify` found.
    pub(super) documents: u64,
    /// `writeErrors`: some statements of the write failed.
    pub(super) write_errors: bool,
    /// `writeConcernError`: done, but not kept as the write concern asked.
    pub(super) write_concern_error: bool,
    /// `n`: documents a write inserted, matched or deleted.
    pub(super) n: i64,
}

impl Reply {
    pub(super) fn read(reply: &Document) -> Reply {
        let mut read = Reply::default();
        for (key, value) in reply {
            match (key.as_str(), value) {
                ("cursor", Bson::Document(cursor)) => {
                    read.documents = cursor
                        .iter()
                        .find_map(|(key, value)| match (key.as_str(), value) {
                            ("firstBatch" | "nextBatch", Bson::Array(batch)) => Some(batch.len() as u64),
                            _ => None,
                        })
                        .unwrap_or(0);
                }
                ("value", value) => read.documents = u64::from(matches!(value, Bson::Document(_))),
                ("writeErrors", _) => read.write_errors = true,
                ("writeConcernError", _) => read.write_concern_error = true,
                ("n", Bson::Int32(n)) => read.n = i64::from(*n),
                ("n", Bson::Int64(n)) => read.n = *n,
                _ => {}
            }
        }
        read
    }
}

/// A shape being written, bounded: past [`LIMIT`] the rest is only hashed.
struct Shape {
    text: String,
    hash: DefaultHasher,
    full: bool,
}

impl Shape {
    /// Past [`LIMIT`], only what does not fit is hashed: what does is in
    /// the text already.
    fn push(&mut self, s: &str) {
        if !self.full && self.text.len() + s.len() <= LIMIT {
            self.text.push_str(s);
        } else {
            self.full = true;
            self.hash.write(s.as_bytes());
        }
    }

    /// A key or operator as it is, or `?` if it may be a value.
    fn word(&mut self, word: &str) {
        self.push(if is_name(word) { word } else { "?" });
    }

    /// A dotted path (`items.0.price`): each part as [`Self::word`].
    fn path(&mut self, path: &str) {
        for (i, part) in path.split('.').enumerate() {
            if i > 0 {
                self.push(".");
            }
            self.word(part);
        }
    }

    fn value(&mut self, value: &Bson, depth: usize) {
        match value {
            // As deep as `structure` reads: one token, whatever is there.
            _ if depth >= MAX_DEPTH => self.push("…"),
            Bson::Document(doc) => self.document(doc, depth),
            Bson::Array(items) => self.array(items, depth),
            _ => self.push("?"),
        }
    }

    fn document(&mut self, doc: &Document, depth: usize) {
        self.push("{");
        for (i, (key, value)) in doc.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.path(key);
            self.push(": ");
            self.value(value, depth + 1);
        }
        self.push("}");
    }

    /// `[?]` for values, of any length; the distinct shapes of documents
    /// (`$or` clauses, pipeline stages), so a generated list of alike
    /// clauses is one shape.
    fn array(&mut self, items: &[Bson], depth: usize) {
        let mut seen: Vec<String> = Vec::new();
        let mut more = false;
        let mut values = false;
        for item in items {
            if !matches!(item, Bson::Document(_) | Bson::Array(_)) {
                values = true;
                continue;
            }
            if more {
                // Past the bound only values are looked for.
                continue;
            }
            let mut one = Shape { text: String::new(), hash: DefaultHasher::new(), full: false };
            one.value(item, depth + 1);
            let one = one.finish();
            if seen.contains(&one) {
                continue;
            }
            if seen.len() == MAX_ELEMENTS {
                more = true;
                continue;
            }
            seen.push(one);
        }
        self.push("[");
        let mut first = true;
        for part in seen.iter().map(String::as_str).chain(values.then_some("?")).chain(more.then_some("…")) {
            if !first {
                self.push(", ");
            }
            first = false;
            self.push(part);
        }
        self.push("]");
    }

    fn finish(mut self) -> String {
        if self.full {
            let _ = write!(self.text, " …#{:08x}", self.hash.finish() >> 32);
        }
        self.text
    }
}

/// A name of the schema or an operator (`status`, `$gt`, `_id`), not a
/// value: a letter, `_` or `$`, then letters, digits or `_`; at most 64
/// bytes; not a run of 16 or more hexadecimal digits with letters (an id
/// used as a key). Anything else (an array index, a UUID, a text with
/// spaces) may be a value, and is written `?`. A key that is a plain word
/// (`scores.ann`, a map keyed by names) cannot be told from a field's name,
/// and is kept.
fn is_name(word: &str) -> bool {
    let mut bytes = word.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'$');
    let id_like = word.len() >= 16 && word.bytes().all(|b| b.is_ascii_hexdigit());
    first_ok && !id_like && word.len() <= 64 && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use mongodb::bson::{doc, oid::ObjectId};

    use super::{Command, Reply};

    fn documents(reply: &mongodb::bson::Document) -> u64 {
        Reply::read(reply).documents
    }

    fn shape(name: &str, command: &mongodb::bson::Document) -> String {
        let mut out = String::new();
        Command::read(name, command).shape(&mut out);
        out
    }

    fn writes(name: &str, command: &mongodb::bson::Document) -> bool {
        Command::read(name, command).writes()
    }

    #[test]
    fn a_shape_keeps_keys_and_operators_and_drops_every_value() {
        let command = doc! {
            "find": "users",
            "filter": { "status": "secret-status", "age": { "$gt": 41 }, "_id": ObjectId::new(),
                        "tags": { "$in": ["a", "b", "c"] }, "items.0.sku": "sku-1" },
            "sort": { "age": -1 },
            "projection": { "name": 1 },
            "limit": 5,
            "$db": "test",
        };
        assert_eq!(
            shape("find", &command),
            "find users filter {status: ?, age: {$gt: ?}, _id: ?, tags: {$in: [?]}, items.?.sku: ?} sort {age: ?} \
             projection {name: ?}"
        );
    }

    #[test]
    fn arrays_of_any_length_are_alike_and_documents_in_them_keep_their_distinct_shapes() {
        let one = doc! { "find": "t", "filter": { "$or": [ { "a": 1 } ], "id": { "$in": [1] } } };
        let many = doc! { "find": "t", "filter": { "$or": [ { "a": 2 }, { "a": 3 }, { "b": "x" } ], "id": { "$in": [1, 2, 3, 4] } } };
        assert_eq!(shape("find", &one), "find t filter {$or: [{a: ?}], id: {$in: [?]}}");
        assert_eq!(shape("find", &many), "find t filter {$or: [{a: ?}, {b: ?}], id: {$in: [?]}}");
    }

    #[test]
    fn a_long_shape_is_bounded_and_still_told_apart_by_its_end() {
        let filter = |last: &str| {
            let mut f = mongodb::bson::Document::new();
            for i in 0..200 {
                f.insert(format!("field_{i:03}"), i);
            }
            f.insert(last, 1);
            doc! { "find": "t", "filter": f }
        };
        let (a, b) = (shape("find", &filter("alpha")), shape("find", &filter("beta")));
        assert!(a.len() <= crate::fingerprint::MAX_LEN, "{}", a.len());
        assert_ne!(a, b);
    }

    #[test]
    fn writes_and_documents_returned() {
        assert!(!writes("find", &doc! { "find": "t" }));
        assert!(writes("insert", &doc! { "insert": "t" }));
        assert!(!writes("insert", &doc! { "insert": "t", "autocommit": false }));
        assert!(writes("commitTransaction", &doc! { "commitTransaction": 1, "autocommit": false }));
        assert!(writes("aggregate", &doc! { "aggregate": "t", "pipeline": [ { "$match": {} }, { "$out": "u" } ] }));
        assert!(!writes("aggregate", &doc! { "aggregate": "t", "pipeline": [ { "$match": {} } ] }));
        assert_eq!(documents(&doc! { "cursor": { "firstBatch": [ {}, {} ], "id": 0_i64 }, "ok": 1 }), 2);
        assert_eq!(documents(&doc! { "cursor": { "nextBatch": [ {} ], "id": 0_i64 }, "ok": 1 }), 1);
        assert_eq!(documents(&doc! { "value": { "a": 1 }, "ok": 1 }), 1);
        assert_eq!(documents(&doc! { "value": null, "ok": 1 }), 0);
        assert_eq!(documents(&doc! { "n": 3, "ok": 1 }), 0);
    }
}
