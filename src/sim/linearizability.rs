//! Linearizability checker for histories recorded against an etcd-v2-style
//! key-value store.
//!
//! # Model
//!
//! Every key is an independent read/write/compare-and-swap register whose
//! initial value is "absent" (`None`). Because operations on different keys
//! never interact, a history is linearizable iff its restriction to every key
//! is linearizable (the locality property of linearizability), so the checker
//! partitions the history by key and checks each partition separately, as
//! Porcupine does with its `Partition` hook.
//!
//! Operations per register:
//!
//! * `Read { result }` is legal iff the current value equals `result`
//!   (`None` = key not found). The state is unchanged.
//! * `Write { value }` is always legal and sets the value.
//! * `Cas { expected, new, ok: true }` is legal iff the current value is
//!   `Some(expected)`; it sets the value to `new`.
//! * `Cas { expected, new, ok: false }` is legal iff the current value is *not*
//!   `Some(expected)` (a CAS on a missing key fails); the state is unchanged.
//!
//! ## Timing
//!
//! Each op has an invocation time `call` and a response time `ret`, in
//! nanoseconds relative to the start of the test (any monotonic `u64` clock
//! works). Real-time order is strict: op A must precede op B only if
//! `A.ret < B.call`. Ops whose intervals merely touch (`A.ret == B.call`) are
//! treated as concurrent. This is the permissive choice and is what makes the
//! checker robust to coarse clocks: the recorder takes `call` before sending
//! and `ret` after receiving, so equal stamps cannot prove an ordering.
//! In the event list this is realised by sorting call events before return
//! events at equal timestamps.
//!
//! ## Operations with unknown outcome
//!
//! An op with `ret: None` (timeout, connection reset, ...) may have taken
//! effect at any instant after its invocation, or never. It is modelled with a
//! response time of +infinity and, unlike a completed op, it does not have to
//! be linearized at all:
//!
//! * a pending `Write` may be linearized anywhere after its call, or omitted;
//! * a pending `Cas` (its `ok` field is ignored) either took effect — which is
//!   only possible if the value was `Some(expected)` at that point — or behaved
//!   as a no-op, which is indistinguishable from omitting it;
//! * a pending `Read` carries no information and is ignored (callers normally
//!   drop such reads, which is equally fine).
//!
//! ## Algorithm
//!
//! Per key, the Wing & Gong / Lowe search ("WGL", as in Porcupine's
//! `checkSingle`):
//!
//! 1. Build a list of call and return events sorted by time (calls first at
//!    equal times, see above). Pending ops get a call event and no return
//!    event. The list is doubly linked so events can be unlinked and relinked
//!    in O(1).
//! 2. Walk the list from the head. At a call event, try to linearize that op
//!    now: if the model accepts it in the current state and the pair
//!    (set of linearized ops, resulting state) has not been seen before, push
//!    (event, old state) on a stack, *lift* the op's call and return events out
//!    of the list and restart from the head. Otherwise move on to the next
//!    event.
//! 3. Reaching a return event means that op's deadline passed without it being
//!    linearized, so the last choice was wrong: pop the stack, restore the
//!    state, *unlift* the op and continue with the event after its call. If the
//!    stack is empty, no linearization exists.
//! 4. Success as soon as every completed op has been linearized; pending ops
//!    still in the list are simply left out.
//!
//! The memo cache is sound because whether the remaining events can be
//! linearized depends only on which ops are already linearized and on the
//! search state (register value plus the flag below). The linearized set is a
//! bitset; its hash is maintained incrementally (Zobrist hashing) so a step
//! costs O(1) plus one bitset comparison on a hash hit. Register values are
//! interned to small integers per key.
//!
//! Plain WGL branches on every candidate and is slow on highly concurrent
//! histories with few distinct values, and pending ops make it explore every
//! subset of them. Three reductions keep it fast; each only restricts the
//! search to a canonical form that some linearization has whenever any does:
//!
//! * **Read-only ops** (completed reads, failed CASes, CASes with
//!   `expected == new`): if one is a candidate (invoked before the earliest
//!   pending deadline) and legal in the current state, it is linearized at
//!   once with no choice point. Moving it to the front of any valid
//!   continuation keeps that continuation valid: it does not change the
//!   value, and nothing left unlinearized had to precede it in real time.
//!   On backtracking such "forced" entries are popped without trying
//!   alternatives.
//! * **Pending ops are observed immediately**: a pending op directly followed
//!   by a write was overwritten unseen, which is the same as omitting it. So
//!   the state carries a flag "last op was pending" and a write is refused
//!   while it is set.
//! * **Interchangeable pending ops** (same kind and values) are used in call
//!   order: an earlier-invoked twin can always take the place of a later one.
//!
//! Before searching, an O(n) scan rejects any completed read or successful
//! CAS that observes a value no op on the key ever writes; this gives a
//! precise message for the most common bug class and costs nothing.
//!
//! The search is exponential in the worst case, so it is capped: every
//! iteration of the loop above counts as one step, and a key whose search
//! exceeds `budget_per_key` steps yields [`Verdict::Unknown`]. Memory use is
//! proportional to the number of cache entries times the bitset size (one bit
//! per op of that key), i.e. bounded by `budget * n_ops / 8` bytes.
//!
//! Known limitation: refuting (not accepting) a history with many pending
//! ops on one key and few distinct values can still be exponential, because
//! different subsets of used pending ops are distinct cache states; such a
//! key may come back `Unknown`. Distinct values per write (usual in tests)
//! avoid this.
//!
//! When a key is not linearizable, the explanation is taken from the deepest
//! point the search reached (most ops linearized): the register value there,
//! the last few ops of that partial linearization, the op whose response
//! could not be justified, and the other ops that were concurrent candidates
//! at that point.
//!
//! # Panics
//!
//! [`check`] panics on malformed input: a completed op with `ret < call`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// What an operation did, as observed by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// A read; `result` is `None` if the key was not found.
    Read { result: Option<String> },
    /// An unconditional put.
    Write { value: String },
    /// Compare-and-swap on the previous value. `ok` is whether it succeeded
    /// (ignored if the outcome is unknown, i.e. `Op::ret` is `None`).
    Cas {
        expected: String,
        new: String,
        ok: bool,
    },
}

/// One recorded operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub client: usize,
    pub key: String,
    /// Invocation time, ns since test start.
    pub call: u64,
    /// Response time, ns since test start; `None` = outcome unknown.
    pub ret: Option<u64>,
    pub kind: OpKind,
}

/// Result of [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    NotLinearizable {
        key: String,
        detail: String,
    },
    /// The search budget for `key` ran out before a verdict was reached.
    Unknown {
        key: String,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ret {
            Some(r) => write!(f, "client {} [{}, {}] ", self.client, self.call, r)?,
            None => write!(f, "client {} [{}, ?] ", self.client, self.call)?,
        }
        match &self.kind {
            OpKind::Read { result } => write!(f, "read {:?} -> {:?}", self.key, result),
            OpKind::Write { value } => write!(f, "write {:?} := {:?}", self.key, value),
            OpKind::Cas { expected, new, ok } => {
                write!(f, "cas {:?} {:?} -> {:?}", self.key, expected, new)?;
                if self.ret.is_some() {
                    write!(f, " ok={ok}")
                } else {
                    write!(f, " (outcome unknown)")
                }
            }
        }
    }
}

/// Checks `history` for linearizability, key by key.
///
/// Returns `NotLinearizable` for the first illegal key (in key order) if any
/// key is illegal, otherwise `Unknown` for the first key whose search ran out
/// of budget, otherwise `Linearizable`.
pub fn check(history: &[Op], budget_per_key: u64) -> Verdict {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history {
        if let Some(r) = op.ret {
            assert!(r >= op.call, "malformed op (ret < call): {op}");
        }
        if constrains(op) {
            by_key.entry(op.key.as_str()).or_default().push(op);
        }
    }
    let mut unknown: Option<String> = None;
    for (key, ops) in by_key {
        match check_key(&ops, budget_per_key, true) {
            KeyResult::Ok => {}
            KeyResult::Illegal(detail) => {
                return Verdict::NotLinearizable {
                    key: key.to_string(),
                    detail,
                };
            }
            KeyResult::OutOfBudget => {
                unknown.get_or_insert_with(|| key.to_string());
            }
        }
    }
    match unknown {
        Some(key) => Verdict::Unknown { key },
        None => Verdict::Linearizable,
    }
}

/// Whether an op can affect the verdict. A read with unknown outcome
/// constrains nothing, and neither does a pending CAS that would not change
/// the value.
fn constrains(op: &Op) -> bool {
    op.ret.is_some()
        || match &op.kind {
            OpKind::Read { .. } => false,
            OpKind::Cas { expected, new, .. } => expected != new,
            OpKind::Write { .. } => true,
        }
}

enum KeyResult {
    Ok,
    Illegal(String),
    OutOfBudget,
}

/// Interned register value: 0 = absent, i + 1 = `values[i]`.
type Val = u32;
const ABSENT: Val = 0;

/// Op with values interned.
#[derive(Clone, Copy)]
enum IOp {
    Read(Val),
    Write(Val),
    Cas { expected: Val, new: Val, ok: bool },
}

/// Search state: the register value plus, in the top bit, whether the op
/// linearized last was pending (see "Pending-op reductions" in the module
/// docs).
type State = u32;
const AFTER_PENDING: State = 1 << 31;

/// Model step. Pending ops only ever take their effect (not linearizing them
/// at all is how "no effect" is expressed), so a pending CAS is treated as a
/// successful one. A write directly after a pending op is refused: that
/// pending op would have been overwritten unobserved, which is equivalent to
/// omitting it, and that alternative is explored anyway.
fn step(state: State, op: IOp, pending: bool) -> Option<State> {
    let after_pending = state & AFTER_PENDING != 0;
    let value = state & !AFTER_PENDING;
    let flag = if pending { AFTER_PENDING } else { 0 };
    match op {
        IOp::Read(v) => (value == v).then_some(value | flag),
        IOp::Write(v) => (!after_pending).then_some(v | flag),
        IOp::Cas { expected, new, ok } => {
            if pending || ok {
                (value == expected).then_some(new | flag)
            } else {
                (value != expected).then_some(value | flag)
            }
        }
    }
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

/// Doubly linked event list stored in arrays; index 0 is the head sentinel.
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Op index of each event (unused for the sentinel).
    op: Vec<usize>,
    /// For a call event: index of its return event (`NIL` if pending).
    /// For a return event: `NIL`.
    ret_of: Vec<usize>,
    is_call: Vec<bool>,
}

impl Events {
    fn unlink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = e;
        if n != NIL {
            self.prev[n] = e;
        }
    }

    fn lift(&mut self, call: usize) {
        self.unlink(call);
        let r = self.ret_of[call];
        if r != NIL {
            self.unlink(r);
        }
    }

    fn unlift(&mut self, call: usize) {
        let r = self.ret_of[call];
        if r != NIL {
            self.relink(r);
        }
        self.relink(call);
    }
}

/// splitmix64, used for the Zobrist keys of the linearized-set hash.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Snapshot of the deepest point the search reached, for error reporting.
struct Deepest {
    depth: usize,
    state: State,
    /// Linearized ops in order (op indices), only the tail is kept.
    tail: Vec<usize>,
    /// The op whose return event forced backtracking.
    stuck: usize,
    /// Unlinearized ops invoked before `stuck` returned.
    candidates: Vec<usize>,
}

const REPORT_TAIL: usize = 4;
const REPORT_CANDIDATES: usize = 10;

struct Interner<'a> {
    values: Vec<&'a str>,
    ids: HashMap<&'a str, Val>,
}

impl<'a> Interner<'a> {
    fn id(&mut self, s: &'a str) -> Val {
        if let Some(&v) = self.ids.get(s) {
            return v;
        }
        self.values.push(s);
        let v = self.values.len() as Val;
        self.ids.insert(s, v);
        v
    }

    fn opt(&mut self, s: &'a Option<String>) -> Val {
        s.as_deref().map_or(ABSENT, |s| self.id(s))
    }

    fn show(&self, v: Val) -> String {
        let v = v & !AFTER_PENDING;
        if v == ABSENT {
            "absent".to_string()
        } else {
            format!("{:?}", self.values[v as usize - 1])
        }
    }
}

/// Checks one key. `precheck` enables the O(n) scan for values observed but
/// never written (always on; off only in tests, to exercise the search).
fn check_key(ops: &[&Op], budget: u64, precheck: bool) -> KeyResult {
    let n = ops.len();
    let mut interner = Interner {
        values: Vec::new(),
        ids: HashMap::new(),
    };
    let iops: Vec<IOp> = ops
        .iter()
        .map(|op| match &op.kind {
            OpKind::Read { result } => IOp::Read(interner.opt(result)),
            OpKind::Write { value } => IOp::Write(interner.id(value)),
            OpKind::Cas { expected, new, ok } => IOp::Cas {
                expected: interner.id(expected),
                new: interner.id(new),
                ok: *ok,
            },
        })
        .collect();
    let pending: Vec<bool> = ops.iter().map(|op| op.ret.is_none()).collect();
    if precheck {
        if let Some(detail) = unwritten_value(ops, &iops, &pending, &interner) {
            return KeyResult::Illegal(detail);
        }
    }
    let remaining = pending.iter().filter(|&&p| !p).count();
    if remaining == 0 {
        return KeyResult::Ok;
    }
    // Symmetry reduction: identical pending ops are linearized in call order,
    // i.e. op i only once `twin_before[i]` is linearized.
    let mut twin_before = vec![NIL; n];
    {
        let mut by_call: Vec<usize> = (0..n).filter(|&i| pending[i]).collect();
        by_call.sort_by_key(|&i| ops[i].call);
        let mut last: HashMap<(Val, Val), usize> = HashMap::new();
        for i in by_call {
            let effect = match iops[i] {
                IOp::Write(v) => (ABSENT, v),
                IOp::Cas { expected, new, .. } => (expected, new),
                IOp::Read(_) => unreachable!("pending reads are filtered out"),
            };
            if let Some(prev) = last.insert(effect, i) {
                twin_before[i] = prev;
            }
        }
    }

    // Events sorted by (time, return-after-call). The sort is stable, so ties
    // among calls (or among returns) keep history order.
    let mut evs: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        evs.push((op.call, false, i));
        if let Some(r) = op.ret {
            evs.push((r, true, i));
        }
    }
    evs.sort_by_key(|&(t, is_ret, _)| (t, is_ret));
    let m = evs.len() + 1;
    let mut list = Events {
        next: (1..=m).map(|i| if i == m { NIL } else { i }).collect(),
        prev: (0..m).map(|i| i.wrapping_sub(1)).collect(),
        op: vec![usize::MAX; m],
        ret_of: vec![NIL; m],
        is_call: vec![false; m],
    };
    let mut call_event = vec![NIL; n];
    for (k, &(_, is_ret, i)) in evs.iter().enumerate() {
        let e = k + 1;
        list.op[e] = i;
        list.is_call[e] = !is_ret;
        if is_ret {
            list.ret_of[call_event[i]] = e;
        } else {
            call_event[i] = e;
        }
    }

    let mut search = Search {
        list,
        zobrist: (0..n as u64).map(mix64).collect(),
        bits: vec![0u64; n.div_ceil(64)],
        hash: 0,
        cache: HashMap::new(),
        stack: Vec::new(),
        state: ABSENT,
        remaining,
    };
    let mut steps = 0u64;
    let mut deepest: Option<Deepest> = None;

    // `entry == HEAD` means "just (re)started from the head of the list".
    let mut entry = HEAD;
    loop {
        if search.remaining == 0 {
            return KeyResult::Ok;
        }
        steps += 1;
        if steps > budget {
            return KeyResult::OutOfBudget;
        }
        if entry == HEAD {
            // Read-only candidates that are legal now are linearized at once,
            // without a choice point (see "Read-only ops" in the module docs).
            let mut e = search.list.next[HEAD];
            let mut forced = None;
            while e != NIL && search.list.is_call[e] {
                let i = search.list.op[e];
                if !pending[i] && is_read_only(iops[i]) {
                    if let Some(new_state) = step(search.state, iops[i], false) {
                        forced = Some((e, new_state));
                        break;
                    }
                }
                e = search.list.next[e];
            }
            if let Some((e, new_state)) = forced {
                entry = if search.try_lift(e, new_state, true, pending[search.list.op[e]]) {
                    HEAD
                } else {
                    // Already explored (and failed) from the resulting
                    // configuration, so this one fails too.
                    match search.backtrack(&pending) {
                        Some(resume) => resume,
                        None => return KeyResult::Illegal(explain(ops, &interner, deepest)),
                    }
                };
                continue;
            }
            entry = search.list.next[HEAD];
        }
        // While a completed op is unlinearized its return event is in the
        // list after every position we can be at, so `entry` is never NIL
        // here; treat it like a return event just in case.
        if entry != NIL && search.list.is_call[entry] {
            let i = search.list.op[entry];
            let twin = twin_before[i];
            // Legal read-only candidates were already taken by the pre-pass.
            let choice = (pending[i] || !is_read_only(iops[i]))
                && (twin == NIL || search.is_linearized(twin));
            let next = if choice {
                step(search.state, iops[i], pending[i])
            } else {
                None
            };
            if let Some(new_state) = next {
                if search.try_lift(entry, new_state, false, pending[i]) {
                    entry = HEAD;
                    continue;
                }
            }
            entry = search.list.next[entry];
        } else {
            if entry != NIL
                && deepest
                    .as_ref()
                    .is_none_or(|d| search.stack.len() > d.depth)
            {
                deepest = Some(search.snapshot(entry));
            }
            match search.backtrack(&pending) {
                Some(resume) => entry = resume,
                None => return KeyResult::Illegal(explain(ops, &interner, deepest)),
            }
        }
    }
}

/// Finds a completed op that observed a value which no op on the key could
/// have written (a read of it, or a successful CAS expecting it).
fn unwritten_value(
    ops: &[&Op],
    iops: &[IOp],
    pending: &[bool],
    interner: &Interner<'_>,
) -> Option<String> {
    let mut written = vec![false; interner.values.len() + 1];
    written[ABSENT as usize] = true;
    for (i, op) in iops.iter().enumerate() {
        match *op {
            IOp::Write(v) => written[v as usize] = true,
            IOp::Cas { new, ok, .. } if ok || pending[i] => written[new as usize] = true,
            _ => {}
        }
    }
    let i = (0..ops.len()).find(|&i| match iops[i] {
        IOp::Read(v) => !written[v as usize],
        IOp::Cas { expected, ok, .. } => ok && !pending[i] && !written[expected as usize],
        IOp::Write(_) => false,
    })?;
    Some(format!(
        "observed a value that no operation on this key writes:\n    {}",
        ops[i]
    ))
}

/// Completed ops that never change the register. When such an op is a
/// candidate and legal in the current state, linearizing it right now is
/// never worse than linearizing it later, so no alternative is explored.
fn is_read_only(op: IOp) -> bool {
    match op {
        IOp::Read(_) => true,
        IOp::Write(_) => false,
        IOp::Cas { expected, new, ok } => !ok || expected == new,
    }
}

struct StackEntry {
    /// Call event of the linearized op.
    entry: usize,
    /// State before it.
    state: State,
    /// Linearized without a choice point: on backtracking, keep popping.
    forced: bool,
}

struct Search {
    list: Events,
    zobrist: Vec<u64>,
    /// Set of linearized ops.
    bits: Vec<u64>,
    /// Zobrist hash of `bits`.
    hash: u64,
    /// (hash of linearized set, state) -> linearized sets seen with that key.
    cache: HashMap<(u64, State), Vec<Box<[u64]>>>,
    stack: Vec<StackEntry>,
    state: State,
    /// Completed ops not yet linearized.
    remaining: usize,
}

impl Search {
    fn is_linearized(&self, i: usize) -> bool {
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    fn flip(&mut self, i: usize) {
        self.bits[i / 64] ^= 1 << (i % 64);
        self.hash ^= self.zobrist[i];
    }

    /// Linearizes the op of call event `entry`, moving to `new_state`, unless
    /// that configuration was already visited. Returns whether it did.
    fn try_lift(&mut self, entry: usize, new_state: State, forced: bool, pending: bool) -> bool {
        let i = self.list.op[entry];
        self.flip(i);
        let seen = self.cache.entry((self.hash, new_state)).or_default();
        if seen.iter().any(|b| **b == *self.bits) {
            self.flip(i);
            return false;
        }
        seen.push(self.bits.clone().into_boxed_slice());
        self.stack.push(StackEntry {
            entry,
            state: self.state,
            forced,
        });
        self.state = new_state;
        self.list.lift(entry);
        if !pending {
            self.remaining -= 1;
        }
        true
    }

    /// Undoes linearizations up to and including the latest choice point.
    /// Returns the event to continue scanning from, or `None` if there is no
    /// choice left.
    fn backtrack(&mut self, pending: &[bool]) -> Option<usize> {
        loop {
            let top = self.stack.pop()?;
            let i = self.list.op[top.entry];
            self.state = top.state;
            self.flip(i);
            self.list.unlift(top.entry);
            if !pending[i] {
                self.remaining += 1;
            }
            if !top.forced {
                return Some(self.list.next[top.entry]);
            }
        }
    }

    /// Describes the current configuration, stuck at return event `ret`.
    fn snapshot(&self, ret: usize) -> Deepest {
        let mut candidates = Vec::new();
        let mut e = self.list.next[HEAD];
        while e != ret && e != NIL {
            if self.list.is_call[e] {
                candidates.push(self.list.op[e]);
            }
            e = self.list.next[e];
        }
        let from = self.stack.len().saturating_sub(REPORT_TAIL);
        Deepest {
            depth: self.stack.len(),
            state: self.state,
            tail: self.stack[from..]
                .iter()
                .map(|s| self.list.op[s.entry])
                .collect(),
            stuck: self.list.op[ret],
            candidates,
        }
    }
}

fn explain(ops: &[&Op], interner: &Interner<'_>, deepest: Option<Deepest>) -> String {
    use std::fmt::Write as _;
    let Some(d) = deepest else {
        return "no linearization exists".to_string();
    };
    let mut s = String::new();
    let _ = write!(
        s,
        "no linearization exists; the longest partial linearization has {} op(s)",
        d.depth
    );
    if !d.tail.is_empty() {
        let _ = write!(s, ", ending with:");
        for &i in &d.tail {
            let _ = write!(s, "\n    {}", ops[i]);
        }
    }
    let _ = write!(
        s,
        "\n  value after it: {}\n  cannot linearize before its response:\n    {}",
        interner.show(d.state),
        ops[d.stuck]
    );
    let others: Vec<usize> = d.candidates.into_iter().filter(|&i| i != d.stuck).collect();
    if others.is_empty() {
        let _ = write!(s, "\n  (no other op was concurrent with it)");
    } else {
        let _ = write!(s, "\n  other candidate ops invoked before that response:");
        for &i in others.iter().take(REPORT_CANDIDATES) {
            let _ = write!(s, "\n    {}", ops[i]);
        }
        if others.len() > REPORT_CANDIDATES {
            let _ = write!(s, "\n    ... and {} more", others.len() - REPORT_CANDIDATES);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    const BUDGET: u64 = 10_000_000;

    fn op(client: usize, key: &str, call: u64, ret: Option<u64>, kind: OpKind) -> Op {
        Op {
            client,
            key: key.to_string(),
            call,
            ret,
            kind,
        }
    }
    fn rd(c: usize, k: &str, call: u64, ret: u64, v: Option<&str>) -> Op {
        let result = v.map(str::to_string);
        op(c, k, call, Some(ret), OpKind::Read { result })
    }
    fn wr(c: usize, k: &str, call: u64, ret: u64, v: &str) -> Op {
        let value = v.to_string();
        op(c, k, call, Some(ret), OpKind::Write { value })
    }
    fn wr_pending(c: usize, k: &str, call: u64, v: &str) -> Op {
        let value = v.to_string();
        op(c, k, call, None, OpKind::Write { value })
    }
    fn cas(c: usize, k: &str, call: u64, ret: u64, exp: &str, new: &str, ok: bool) -> Op {
        let (expected, new) = (exp.to_string(), new.to_string());
        op(c, k, call, Some(ret), OpKind::Cas { expected, new, ok })
    }
    fn cas_pending(c: usize, k: &str, call: u64, exp: &str, new: &str) -> Op {
        let (expected, new) = (exp.to_string(), new.to_string());
        // `ok` is meaningless for a pending CAS; use `false` to prove it is ignored.
        op(
            c,
            k,
            call,
            None,
            OpKind::Cas {
                expected,
                new,
                ok: false,
            },
        )
    }

    fn ok(h: &[Op]) -> bool {
        check(h, BUDGET) == Verdict::Linearizable
    }
    fn illegal_key(h: &[Op]) -> Option<String> {
        match check(h, BUDGET) {
            Verdict::NotLinearizable { key, .. } => Some(key),
            _ => None,
        }
    }
    fn illegal(h: &[Op]) -> bool {
        illegal_key(h).is_some()
    }

    // ---- basics -------------------------------------------------------

    #[test]
    fn empty_history() {
        assert!(ok(&[]));
    }

    #[test]
    fn initial_state_is_absent() {
        assert!(ok(&[rd(0, "x", 0, 1, None)]));
        assert!(illegal(&[rd(0, "x", 0, 1, Some("a"))]));
    }

    #[test]
    fn sequential_legal() {
        let h = [
            rd(0, "x", 0, 1, None),
            wr(0, "x", 2, 3, "a"),
            rd(1, "x", 4, 5, Some("a")),
            wr(1, "x", 6, 7, "b"),
            rd(0, "x", 8, 9, Some("b")),
            wr(0, "x", 10, 11, "b"),
            rd(2, "x", 12, 13, Some("b")),
        ];
        assert!(ok(&h));
    }

    #[test]
    fn sequential_illegal() {
        let h = [
            wr(0, "x", 0, 1, "a"),
            wr(0, "x", 2, 3, "b"),
            rd(0, "x", 4, 5, Some("a")),
        ];
        assert!(illegal(&h));
    }

    #[test]
    fn input_order_does_not_matter() {
        let h = [
            rd(1, "x", 4, 5, Some("a")),
            wr(0, "x", 2, 3, "a"),
            rd(0, "x", 0, 1, None),
        ];
        assert!(ok(&h));
    }

    #[test]
    fn concurrent_write_read_legal_in_one_order_only() {
        // The read overlaps the write and sees the new value: legal only if
        // the write is linearized first.
        let h = [wr(0, "x", 0, 10, "a"), rd(1, "x", 5, 15, Some("a"))];
        assert!(ok(&h));
        // Also legal if it sees the old value (read first).
        let h = [wr(0, "x", 0, 10, "a"), rd(1, "x", 5, 15, None)];
        assert!(ok(&h));
        // Two overlapping writes; later sequential reads force an order.
        let h = [
            wr(0, "x", 0, 10, "a"),
            wr(1, "x", 2, 12, "b"),
            rd(2, "x", 20, 21, Some("a")),
            rd(2, "x", 22, 23, Some("a")),
        ];
        assert!(ok(&h));
        // ... but reading a then b then a again is illegal.
        let h = [
            wr(0, "x", 0, 10, "a"),
            wr(1, "x", 2, 12, "b"),
            rd(2, "x", 5, 15, Some("a")),
            rd(3, "x", 16, 17, Some("b")),
            rd(2, "x", 18, 19, Some("a")),
        ];
        assert!(illegal(&h));
    }

    #[test]
    fn stale_read_after_acknowledged_write_is_illegal() {
        let h = [
            wr(0, "x", 0, 1, "a"),
            wr(0, "x", 2, 10, "b"),
            rd(1, "x", 11, 12, Some("a")),
        ];
        assert!(illegal(&h));
        // A read concurrent with the second write may still see "a".
        let h = [
            wr(0, "x", 0, 1, "a"),
            wr(0, "x", 2, 10, "b"),
            rd(1, "x", 9, 12, Some("a")),
        ];
        assert!(ok(&h));
    }

    #[test]
    fn read_of_value_never_written_is_illegal() {
        let h = [
            wr(0, "x", 0, 10, "a"),
            rd(1, "x", 0, 10, Some("zzz")),
            wr(2, "x", 0, 10, "b"),
        ];
        assert!(illegal(&h));
    }

    #[test]
    fn touching_intervals_are_concurrent() {
        // write returns at t=10 and the read is invoked at t=10: they may be
        // ordered either way, so reading the initial value is legal.
        let h = [wr(0, "x", 0, 10, "a"), rd(1, "x", 10, 20, None)];
        assert!(ok(&h));
        let h = [wr(0, "x", 0, 10, "a"), rd(1, "x", 11, 20, None)];
        assert!(illegal(&h));
        // Zero-length intervals.
        let h = [
            wr(0, "x", 5, 5, "a"),
            rd(1, "x", 5, 5, None),
            rd(1, "x", 6, 6, Some("a")),
        ];
        assert!(ok(&h));
    }

    // ---- CAS ------------------------------------------------------------

    #[test]
    fn cas_legal() {
        let h = [
            cas(0, "x", 0, 1, "a", "b", false), // missing key: fails
            wr(0, "x", 2, 3, "a"),
            cas(1, "x", 4, 5, "z", "b", false), // wrong expected value
            cas(1, "x", 6, 7, "a", "b", true),
            rd(0, "x", 8, 9, Some("b")),
            cas(2, "x", 10, 11, "a", "c", false), // "a" is gone
            cas(2, "x", 12, 13, "b", "b", true),  // same value
            rd(1, "x", 14, 15, Some("b")),
        ];
        assert!(ok(&h));
    }

    #[test]
    fn cas_on_missing_key_cannot_succeed() {
        assert!(illegal(&[cas(0, "x", 0, 1, "a", "b", true)]));
    }

    #[test]
    fn cas_success_with_wrong_expected_is_illegal() {
        let h = [wr(0, "x", 0, 1, "a"), cas(0, "x", 2, 3, "b", "c", true)];
        assert!(illegal(&h));
    }

    #[test]
    fn cas_failure_when_value_matched_is_illegal() {
        let h = [wr(0, "x", 0, 1, "a"), cas(0, "x", 2, 3, "a", "c", false)];
        assert!(illegal(&h));
    }

    #[test]
    fn concurrent_cas_only_one_winner() {
        // Two clients race CAS a->b and a->c; both succeeding is illegal...
        let h = [
            wr(0, "x", 0, 1, "a"),
            cas(1, "x", 2, 10, "a", "b", true),
            cas(2, "x", 2, 10, "a", "c", true),
        ];
        assert!(illegal(&h));
        // ... one winner, one loser is fine, and the final read decides which.
        let h = [
            wr(0, "x", 0, 1, "a"),
            cas(1, "x", 2, 10, "a", "b", true),
            cas(2, "x", 2, 10, "a", "c", false),
            rd(0, "x", 11, 12, Some("b")),
        ];
        assert!(ok(&h));
        let h = [
            wr(0, "x", 0, 1, "a"),
            cas(1, "x", 2, 10, "a", "b", true),
            cas(2, "x", 2, 10, "a", "c", false),
            rd(0, "x", 11, 12, Some("c")),
        ];
        assert!(illegal(&h));
    }

    #[test]
    fn failed_cas_concurrent_with_write_may_see_either() {
        // The failed CAS must be ordered where the value is not "a": before
        // the write (absent) works.
        let h = [wr(0, "x", 0, 10, "a"), cas(1, "x", 0, 10, "a", "b", false)];
        assert!(ok(&h));
    }

    // ---- unknown outcomes ---------------------------------------------

    #[test]
    fn pending_write_seen_is_legal() {
        let h = [
            wr(0, "x", 0, 1, "a"),
            wr_pending(1, "x", 2, "b"),
            rd(2, "x", 100, 101, Some("b")),
            rd(2, "x", 102, 103, Some("b")),
        ];
        assert!(ok(&h));
    }

    #[test]
    fn pending_write_not_seen_is_legal() {
        let h = [
            wr(0, "x", 0, 1, "a"),
            wr_pending(1, "x", 2, "b"),
            rd(2, "x", 100, 101, Some("a")),
            rd(2, "x", 1000, 1001, Some("a")),
        ];
        assert!(ok(&h));
    }

    #[test]
    fn pending_write_may_take_effect_late() {
        // Not visible at first, visible much later: legal.
        let h = [
            wr(0, "x", 0, 1, "a"),
            wr_pending(1, "x", 2, "b"),
            rd(2, "x", 100, 101, Some("a")),
            rd(2, "x", 1000, 1001, Some("b")),
        ];
        assert!(ok(&h));
    }

    #[test]
    fn pending_write_seen_then_unseen_is_illegal() {
        let h = [
            wr(0, "x", 0, 10, "a"),
            wr_pending(1, "x", 20, "b"),
            rd(2, "x", 30, 40, Some("b")),
            rd(3, "x", 50, 60, Some("a")),
        ];
        assert!(illegal(&h));
    }

    #[test]
    fn pending_write_cannot_take_effect_before_invocation() {
        let h = [
            wr(0, "x", 0, 1, "a"),
            rd(2, "x", 5, 6, Some("b")),
            wr_pending(1, "x", 10, "b"),
        ];
        assert!(illegal(&h));
    }

    #[test]
    fn pending_cas_seen_and_not_seen() {
        let base = [wr(0, "x", 0, 1, "a"), cas_pending(1, "x", 2, "a", "b")];
        let mut seen = base.to_vec();
        seen.push(rd(2, "x", 10, 11, Some("b")));
        assert!(ok(&seen));
        let mut unseen = base.to_vec();
        unseen.push(rd(2, "x", 10, 11, Some("a")));
        assert!(ok(&unseen));
        let mut flicker = seen.clone();
        flicker.push(rd(2, "x", 12, 13, Some("a")));
        assert!(illegal(&flicker));
    }

    #[test]
    fn pending_cas_cannot_apply_when_expected_mismatches() {
        let h = [
            wr(0, "x", 0, 1, "z"),
            cas_pending(1, "x", 2, "a", "b"),
            rd(2, "x", 10, 11, Some("b")),
        ];
        assert!(illegal(&h));
        // ... unless something made the expected value current in between.
        let h = [
            wr(0, "x", 0, 1, "z"),
            cas_pending(1, "x", 2, "a", "b"),
            wr(3, "x", 3, 4, "a"),
            rd(2, "x", 10, 11, Some("b")),
        ];
        assert!(ok(&h));
    }

    #[test]
    fn pending_chain_of_write_then_cas() {
        // Only reachable by applying two pending ops back to back.
        let h = [
            wr(0, "x", 0, 1, "c"),
            wr_pending(1, "x", 2, "a"),
            cas_pending(2, "x", 2, "a", "b"),
            rd(3, "x", 10, 11, Some("b")),
        ];
        assert!(ok(&h));
    }

    #[test]
    fn pending_write_may_land_after_later_acknowledged_write() {
        let base = [
            wr(0, "x", 0, 1, "a"),
            wr_pending(1, "x", 2, "b"),
            wr(2, "x", 3, 4, "c"),
        ];
        for (first, second) in [("b", "b"), ("c", "c"), ("c", "b"), ("b", "c")] {
            let mut h = base.to_vec();
            h.push(rd(3, "x", 5, 6, Some(first)));
            h.push(rd(3, "x", 7, 8, Some(second)));
            // "b" then "c" would need the acknowledged write after the read
            // that followed it in real time.
            assert_eq!(ok(&h), (first, second) != ("b", "c"), "{first} {second}");
        }
    }

    #[test]
    fn identical_pending_writes_are_each_usable_once() {
        let mut h: Vec<Op> = (0..10)
            .map(|i| wr_pending(i, "x", i as u64, if i % 2 == 0 { "a" } else { "b" }))
            .collect();
        for j in 0..10u64 {
            let v = if j % 2 == 0 { "a" } else { "b" };
            h.push(rd(99, "x", 100 + 2 * j, 101 + 2 * j, Some(v)));
        }
        assert!(ok(&h));
        h.push(rd(99, "x", 200, 201, Some("a")));
        assert!(illegal(&h));
    }

    #[test]
    fn pending_reads_are_ignored() {
        let h = [
            wr(0, "x", 0, 1, "a"),
            op(
                1,
                "x",
                2,
                None,
                OpKind::Read {
                    result: Some("garbage".into()),
                },
            ),
            op(
                1,
                "y",
                2,
                None,
                OpKind::Read {
                    result: Some("garbage".into()),
                },
            ),
        ];
        assert!(ok(&h));
    }

    #[test]
    fn only_pending_ops() {
        let h = [wr_pending(0, "x", 0, "a"), cas_pending(1, "x", 0, "b", "c")];
        assert!(ok(&h));
    }

    #[test]
    fn many_pending_writes_one_seen() {
        let mut h: Vec<Op> = (0..40)
            .map(|i| wr_pending(i, "x", i as u64, &format!("v{i}")))
            .collect();
        h.push(rd(99, "x", 1000, 1001, Some("v17")));
        h.push(rd(99, "x", 1002, 1003, Some("v3")));
        assert!(ok(&h));
        h.push(rd(99, "x", 1004, 1005, Some("v17")));
        assert!(illegal(&h));
    }

    // ---- partitioning, verdict plumbing --------------------------------

    #[test]
    fn keys_are_independent() {
        // As a single register this would be illegal (read x sees "a" after
        // "b" was written to y); per key it is fine.
        let h = [
            wr(0, "x", 0, 1, "a"),
            wr(1, "y", 2, 3, "b"),
            rd(2, "x", 4, 5, Some("a")),
            rd(2, "y", 6, 7, Some("b")),
            rd(3, "z", 8, 9, None),
        ];
        assert!(ok(&h));
    }

    #[test]
    fn illegal_key_is_reported() {
        let h = [
            wr(0, "x", 0, 1, "a"),
            wr(1, "y", 2, 3, "b"),
            rd(2, "x", 4, 5, Some("a")),
            rd(2, "y", 6, 7, None),
            rd(3, "z", 8, 9, None),
        ];
        assert_eq!(illegal_key(&h).as_deref(), Some("y"));
    }

    #[test]
    fn detail_names_the_offending_op() {
        let h = [
            wr(0, "x", 0, 1, "a"),
            wr(0, "x", 2, 3, "b"),
            rd(7, "x", 4, 5, Some("a")),
        ];
        let Verdict::NotLinearizable { key, detail } = check(&h, BUDGET) else {
            panic!("expected NotLinearizable");
        };
        assert_eq!(key, "x");
        assert!(
            detail.contains("client 7 [4, 5] read \"x\" -> Some(\"a\")"),
            "{detail}"
        );
        assert!(detail.contains("value after it: \"b\""), "{detail}");
    }

    #[test]
    fn budget_exhaustion_is_unknown() {
        let h = [wr(0, "x", 0, 1, "a"), rd(0, "x", 2, 3, Some("a"))];
        assert_eq!(check(&h, 1), Verdict::Unknown { key: "x".into() });
        assert!(ok(&h));
    }

    #[test]
    fn illegal_key_wins_over_unknown_key() {
        let mut h: Vec<Op> = (0..10)
            .map(|i| wr(i, "a", 0, 100, &format!("v{i}")))
            .collect();
        h.push(rd(0, "b", 0, 1, Some("nope")));
        assert_eq!(illegal_key(&h).as_deref(), Some("b"));
        assert!(matches!(check(&h, 3), Verdict::NotLinearizable { .. }));
    }

    #[test]
    #[should_panic(expected = "ret < call")]
    fn malformed_op_panics() {
        check(&[rd(0, "x", 5, 4, None)], BUDGET);
    }

    // ---- randomized -----------------------------------------------------

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(1);
            mix64(self.0)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    struct Params {
        ops: usize,
        clients: usize,
        keys: usize,
        values: usize,
        pending_percent: u64,
    }

    /// A history produced by a real linearizable register: every client
    /// issues sequential ops with random latencies; each op takes effect at a
    /// random instant inside its interval. Some writes/CASes lose their
    /// response (taking effect or not); some reads lose theirs too.
    fn random_history(rng: &mut Rng, p: &Params) -> Vec<Op> {
        let mut clock = vec![0u64; p.clients];
        // (linearization point, taken effect, op)
        let mut ops: Vec<(u64, bool, Op)> = Vec::with_capacity(p.ops);
        for _ in 0..p.ops {
            let c = rng.below(p.clients as u64) as usize;
            let call = clock[c] + rng.below(50);
            let ret = call + 1 + rng.below(200);
            clock[c] = ret + 1;
            let lp = call + rng.below(ret - call + 1);
            let key = format!("k{}", rng.below(p.keys as u64));
            let val = |rng: &mut Rng| format!("v{}", rng.below(p.values as u64));
            let kind = match rng.below(10) {
                0..=3 => OpKind::Read { result: None },
                4..=6 => OpKind::Write { value: val(rng) },
                _ => OpKind::Cas {
                    expected: val(rng),
                    new: val(rng),
                    ok: false,
                },
            };
            let pending = rng.chance(p.pending_percent);
            let effect = !pending || rng.chance(50);
            let ret = (!pending).then_some(ret);
            ops.push((
                lp,
                effect,
                Op {
                    client: c,
                    key,
                    call,
                    ret,
                    kind,
                },
            ));
        }
        ops.sort_by_key(|&(lp, _, _)| lp);
        let mut reg: HashMap<String, String> = HashMap::new();
        for (_, effect, op) in &mut ops {
            if !*effect {
                continue;
            }
            let cur = reg.get(&op.key).cloned();
            match &mut op.kind {
                OpKind::Read { result } => *result = cur,
                OpKind::Write { value } => {
                    reg.insert(op.key.clone(), value.clone());
                }
                OpKind::Cas { expected, new, ok } => {
                    *ok = cur.as_deref() == Some(expected.as_str());
                    if *ok {
                        reg.insert(op.key.clone(), new.clone());
                    }
                }
            }
        }
        // Pending reads carry garbage: the checker must ignore them.
        for (_, effect, op) in &mut ops {
            if let (false, OpKind::Read { result }) = (*effect, &mut op.kind) {
                *result = Some("garbage".into());
            }
        }
        // Shuffle to recorded (not linearization) order.
        let mut h: Vec<Op> = ops.into_iter().map(|(_, _, op)| op).collect();
        for i in (1..h.len()).rev() {
            h.swap(i, rng.below(i as u64 + 1) as usize);
        }
        h
    }

    fn param_sets() -> Vec<Params> {
        let mut v = Vec::new();
        for &(ops, clients, keys, values, pending_percent) in &[
            (10, 2, 1, 2, 0),
            (30, 3, 1, 3, 10),
            (60, 5, 2, 3, 10),
            (100, 8, 1, 4, 5),
            (200, 16, 3, 5, 5),
            (300, 6, 1, 3, 5),
            (150, 6, 1, 2, 20),
        ] {
            v.push(Params {
                ops,
                clients,
                keys,
                values,
                pending_percent,
            });
        }
        v
    }

    #[test]
    fn random_valid_histories_are_linearizable() {
        let mut rng = Rng(1);
        for p in param_sets() {
            for round in 0..50 {
                let h = random_history(&mut rng, &p);
                let v = check(&h, BUDGET);
                assert_eq!(
                    v,
                    Verdict::Linearizable,
                    "ops={} round={round}: {h:#?}",
                    p.ops
                );
            }
        }
    }

    #[test]
    fn random_histories_with_a_corrupted_read_are_not_linearizable() {
        let mut rng = Rng(2);
        let mut tested = 0;
        for p in param_sets() {
            for _ in 0..50 {
                let mut h = random_history(&mut rng, &p);
                let reads: Vec<usize> = (0..h.len())
                    .filter(|&i| h[i].ret.is_some() && matches!(h[i].kind, OpKind::Read { .. }))
                    .collect();
                if reads.is_empty() {
                    continue;
                }
                let i = reads[rng.below(reads.len() as u64) as usize];
                h[i].kind = OpKind::Read {
                    result: Some("never-written".into()),
                };
                let key = h[i].key.clone();
                match check(&h, BUDGET) {
                    Verdict::NotLinearizable { key: k, detail } => {
                        assert_eq!(k, key);
                        assert!(detail.contains("never-written"), "{detail}");
                    }
                    v => panic!("expected NotLinearizable, got {v:?}"),
                }
                // The same verdict from the WGL search alone.
                let ops: Vec<&Op> = h.iter().filter(|o| o.key == key && constrains(o)).collect();
                match check_key(&ops, BUDGET, false) {
                    KeyResult::Illegal(detail) => {
                        assert!(detail.contains("never-written"), "{detail}")
                    }
                    KeyResult::Ok => panic!("search accepted a corrupted history"),
                    KeyResult::OutOfBudget => panic!("search ran out of budget"),
                }
                tested += 1;
            }
        }
        assert!(tested > 300);
    }

    #[test]
    fn random_histories_with_stale_read_are_not_linearizable() {
        // Replace the result of a read that follows (in real time) two
        // non-concurrent acknowledged writes of distinct values with the older
        // value. Checks a subtler violation than a never-written value.
        let mut rng = Rng(3);
        let mut tested = 0;
        for _ in 0..200 {
            let mut h = vec![wr(0, "x", 0, 10, "old"), wr(1, "x", 20, 30, "new")];
            let extra = random_history(
                &mut rng,
                &Params {
                    ops: 40,
                    clients: 4,
                    keys: 1,
                    values: 3,
                    pending_percent: 0,
                },
            );
            // Shift the random ops so they all start after "new" is acknowledged
            // and never write "old"/"new".
            let first_after: Vec<Op> = extra
                .into_iter()
                .map(|mut o| {
                    o.call += 40;
                    o.ret = o.ret.map(|r| r + 40);
                    o.key = "y".into();
                    o
                })
                .collect();
            h.extend(first_after);
            h.push(rd(9, "x", 35, 39, Some("old")));
            assert_eq!(illegal_key(&h).as_deref(), Some("x"));
            tested += 1;
        }
        assert_eq!(tested, 200);
    }

    #[test]
    fn performance_2000_ops_16_clients_one_key() {
        let mut rng = Rng(4);
        let p = Params {
            ops: 2000,
            clients: 16,
            keys: 1,
            values: 4,
            pending_percent: 2,
        };
        let mut worst = std::time::Duration::ZERO;
        for _ in 0..5 {
            let h = random_history(&mut rng, &p);
            let t = Instant::now();
            assert_eq!(check(&h, BUDGET), Verdict::Linearizable);
            worst = worst.max(t.elapsed());
        }
        eprintln!("2000 ops / 16 clients: worst {worst:?}");
        if !cfg!(debug_assertions) {
            assert!(worst.as_millis() < 500, "too slow: {worst:?}");
        }
    }
}
