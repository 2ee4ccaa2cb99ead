//! Every way through a body, and the fewest operations zen counts on any of
//! them: the path a budget check must hold for. Paths that end in an error
//! propagated by `?` or in a panic are set aside; every other way out (the
//! end of the body, a `return`, a `break` out of a labeled block, the `else`
//! of a `let ... else`) counts.

use super::query::{self, Counted, Transactions};

/// The operations counted along one path, in order.
pub(crate) type Path = Vec<Counted>;

/// What an expression does to the paths through it.
#[derive(Clone, Default)]
pub(crate) struct Flow {
    /// The path with the fewest operations that goes on after it; `None`
    /// when none does (it returns, breaks, loops forever or panics).
    pub(crate) through: Option<Path>,
    /// The path with the fewest operations that leaves the fn inside it.
    pub(crate) exits: Option<Path>,
    /// Paths leaving by `break`, by label (`None`: the innermost loop).
    breaks: Vec<(Option<String>, Path)>,
}

fn shorter(a: Option<Path>, b: Option<Path>) -> Option<Path> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.len() < a.len() { b } else { a }),
        (a, b) => a.or(b),
    }
}

fn after(before: &Path, path: Path) -> Path {
    before.iter().cloned().chain(path).collect()
}

impl Flow {
    pub(crate) fn empty() -> Flow {
        Flow { through: Some(Vec::new()), ..Flow::default() }
    }

    fn diverges() -> Flow {
        Flow::default()
    }

    fn count(counted: Counted) -> Flow {
        Flow { through: Some(vec![counted]), ..Flow::default() }
    }

    /// This, then `next` on the paths that go on.
    fn then(self, next: Flow) -> Flow {
        let Some(before) = self.through else { return self };
        let mut breaks = self.breaks;
        breaks.extend(next.breaks.into_iter().map(|(label, path)| (label, after(&before, path))));
        Flow {
            through: next.through.map(|p| after(&before, p)),
            exits: shorter(self.exits, next.exits.map(|p| after(&before, p))),
            breaks,
        }
    }

    /// Either this or `other`.
    fn or(mut self, other: Flow) -> Flow {
        self.breaks.extend(other.breaks);
        Flow {
            through: shorter(self.through, other.through),
            exits: shorter(self.exits, other.exits),
            breaks: self.breaks,
        }
    }

    /// Takes the breaks that target `label` (or, for a loop, unlabeled ones).
    fn take_breaks(&mut self, label: Option<&str>, unlabeled: bool) -> Option<Path> {
        let mut taken = None;
        self.breaks.retain(|(l, path)| {
            let ours = match l {
                Some(l) => Some(l.as_str()) == label,
                None => unlabeled,
            };
            if ours {
                taken = shorter(taken.take(), Some(path.clone()));
            }
            !ours
        });
        taken
    }

    /// Every way out of a whole body: its end or a `return`.
    pub(crate) fn out(self) -> Option<Path> {
        shorter(self.through, self.exits)
    }
}

/// Macros that evaluate each argument: their queries run.
const EVALUATES: &[&str] = &[
    "format",
    "format_args",
    "print",
    "println",
    "eprint",
    "eprintln",
    "write",
    "writeln",
    "vec",
    "dbg",
    "assert",
    "assert_eq",
    "assert_ne",
];
/// Macros that await every future they are given.
const JOINS: &[&str] = &["join", "try_join"];
/// Macros that never return.
const PANICS: &[&str] = &["panic", "unreachable", "todo", "unimplemented"];
/// Iterator and stream adaptors that run their closure once per item.
const PER_ITEM: &[&str] =
    &["map", "for_each", "then", "filter_map", "flat_map", "and_then", "try_for_each", "fold", "for_each_concurrent"];

pub(crate) struct Walk<'a> {
    transactions: &'a Transactions,
    loops: u32,
    /// Operations inside a loop body or a per-item closure.
    pub(crate) in_loops: Vec<Counted>,
}

impl<'a> Walk<'a> {
    pub(crate) fn new(transactions: &'a Transactions) -> Self {
        Walk { transactions, loops: 0, in_loops: Vec::new() }
    }

    pub(crate) fn block(&mut self, block: &syn::Block) -> Flow {
        block.stmts.iter().fold(Flow::empty(), |flow, stmt| {
            let next = self.stmt(stmt);
            flow.then(next)
        })
    }

    fn stmt(&mut self, stmt: &syn::Stmt) -> Flow {
        match stmt {
            syn::Stmt::Local(local) => {
                let Some(init) = &local.init else { return Flow::empty() };
                let bound = match &local.pat {
                    syn::Pat::Ident(p) => Some(p.ident.to_string()),
                    syn::Pat::Type(t) => match &*t.pat {
                        syn::Pat::Ident(p) => Some(p.ident.to_string()),
                        _ => None,
                    },
                    _ => None,
                };
                let flow = self.expr_bound(&init.expr, bound.as_deref());
                match &init.diverge {
                    // The `else` runs when the pattern does not match.
                    Some((_, otherwise)) => {
                        let otherwise = self.expr(otherwise);
                        flow.then(Flow::empty().or(otherwise))
                    }
                    None => flow,
                }
            }
            syn::Stmt::Item(_) => Flow::empty(),
            syn::Stmt::Expr(expr, _) => self.expr(expr),
            syn::Stmt::Macro(m) => self.mac(&m.mac),
        }
    }

    fn expr(&mut self, expr: &syn::Expr) -> Flow {
        self.expr_bound(expr, None)
    }

    fn seq<'e>(&mut self, exprs: impl IntoIterator<Item = &'e syn::Expr>) -> Flow {
        exprs.into_iter().fold(Flow::empty(), |flow, e| {
            let next = self.expr(e);
            flow.then(next)
        })
    }

    fn counted(&mut self, counted: Counted) -> Flow {
        if self.loops > 0 {
            self.in_loops.push(counted.clone());
        }
        Flow::count(counted)
    }

    fn expr_bound(&mut self, expr: &syn::Expr, bound: Option<&str>) -> Flow {
        use syn::Expr as E;
        match expr {
            E::Await(a) => {
                if let Some(counted) = query::operation(&a.base, bound, self.transactions) {
                    let before = self.parts(&a.base);
                    let counted = self.counted(counted);
                    return before.then(counted);
                }
                match &*a.base {
                    // `async { .. }.await`: the block runs here.
                    E::Async(block) => self.block(&block.block),
                    base => self.expr(base),
                }
            }
            // The error path of `?` is set aside.
            E::Try(t) => self.expr_bound(&t.expr, bound),
            E::Return(r) => {
                let flow = r.expr.as_deref().map_or_else(Flow::empty, |e| self.expr(e));
                Flow { exits: shorter(flow.exits, flow.through), through: None, breaks: flow.breaks }
            }
            E::Break(b) => {
                let mut flow = b.expr.as_deref().map_or_else(Flow::empty, |e| self.expr(e));
                if let Some(path) = flow.through.take() {
                    flow.breaks.push((b.label.as_ref().map(|l| l.ident.to_string()), path));
                }
                flow
            }
            E::Continue(_) => Flow::diverges(),
            E::If(i) => {
                let condition = self.expr(&i.cond);
                let then = self.block(&i.then_branch);
                let otherwise = i.else_branch.as_ref().map_or_else(Flow::empty, |(_, e)| self.expr(e));
                condition.then(then.or(otherwise))
            }
            E::Match(m) => {
                let scrutinee = self.expr(&m.expr);
                let arms = m.arms.iter().map(|arm| {
                    let guard = arm.guard.as_ref().map_or_else(Flow::empty, |(_, g)| self.expr(g));
                    let body = self.expr(&arm.body);
                    guard.then(body)
                });
                let arms: Vec<Flow> = arms.collect();
                let choice = arms.into_iter().reduce(Flow::or).unwrap_or_else(Flow::diverges);
                scrutinee.then(choice)
            }
            E::While(w) => {
                let condition = self.expr(&w.cond);
                let body = self.looped(&w.body, w.label.as_ref());
                condition.then(Flow::empty().or(body))
            }
            E::ForLoop(f) => {
                let items = self.expr(&f.expr);
                let body = self.looped(&f.body, f.label.as_ref());
                items.then(Flow::empty().or(body))
            }
            E::Loop(l) => {
                let mut body = self.looped_raw(&l.body);
                let label = l.label.as_ref().map(|l| l.name.ident.to_string());
                let out = body.take_breaks(label.as_deref(), true);
                Flow { through: out, exits: body.exits, breaks: body.breaks }
            }
            E::Block(b) => {
                let mut flow = self.block(&b.block);
                if let Some(label) = &b.label {
                    let out = flow.take_breaks(Some(&label.name.ident.to_string()), false);
                    flow.through = shorter(flow.through, out);
                }
                flow
            }
            E::Unsafe(u) => self.block(&u.block),
            E::Const(c) => self.block(&c.block),
            // Not run here: only built.
            E::Async(_) | E::Closure(_) => Flow::empty(),
            E::Macro(m) => self.mac(&m.mac),
            E::Binary(b) => {
                let left = self.expr(&b.left);
                let right = self.expr(&b.right);
                match b.op {
                    syn::BinOp::And(_) | syn::BinOp::Or(_) => left.then(Flow::empty().or(right)),
                    _ => left.then(right),
                }
            }
            E::MethodCall(call) => {
                if PER_ITEM.contains(&call.method.to_string().as_str()) {
                    for arg in &call.args {
                        self.per_item(arg);
                    }
                }
                let receiver = self.expr(&call.receiver);
                let args = self.seq(&call.args);
                receiver.then(args)
            }
            E::Call(c) => {
                let func = self.expr(&c.func);
                let args = self.seq(&c.args);
                func.then(args)
            }
            E::Let(l) => self.expr(&l.expr),
            E::Paren(p) => self.expr_bound(&p.expr, bound),
            E::Group(g) => self.expr_bound(&g.expr, bound),
            E::Reference(r) => self.expr(&r.expr),
            E::Unary(u) => self.expr(&u.expr),
            E::Cast(c) => self.expr(&c.expr),
            E::Field(f) => self.expr(&f.base),
            E::Index(i) => self.seq([&*i.expr, &*i.index]),
            E::Assign(a) => self.seq([&*a.right, &*a.left]),
            E::Array(a) => self.seq(&a.elems),
            E::Tuple(t) => self.seq(&t.elems),
            E::Repeat(r) => self.expr(&r.expr),
            E::Struct(s) => {
                let fields = self.seq(s.fields.iter().map(|f| &f.expr));
                let rest = s.rest.as_deref().map_or_else(Flow::empty, |r| self.expr(r));
                fields.then(rest)
            }
            E::Range(r) => self.seq(r.start.iter().chain(r.end.iter()).map(|e| &**e)),
            _ => Flow::empty(),
        }
    }

    /// What runs before an awaited operation: its receiver and arguments.
    fn parts(&mut self, future: &syn::Expr) -> Flow {
        match future {
            syn::Expr::MethodCall(call) => {
                let receiver = self.parts(&call.receiver);
                let args = self.seq(&call.args);
                receiver.then(args)
            }
            syn::Expr::Call(call) => self.seq(&call.args),
            _ => Flow::empty(),
        }
    }

    /// A loop body, run any number of times, its own breaks taken.
    fn looped(&mut self, body: &syn::Block, label: Option<&syn::Label>) -> Flow {
        let mut flow = self.looped_raw(body);
        let label = label.map(|l| l.name.ident.to_string());
        // Leaving by `break` goes on after the loop: never fewer operations
        // than not entering it, which the caller already allows.
        let _ = flow.take_breaks(label.as_deref(), true);
        Flow { through: None, ..flow }
    }

    fn looped_raw(&mut self, body: &syn::Block) -> Flow {
        self.loops += 1;
        let flow = self.block(body);
        self.loops -= 1;
        flow
    }

    /// A closure run once per item: its operations run in a loop.
    fn per_item(&mut self, arg: &syn::Expr) {
        let body = match arg {
            syn::Expr::Closure(c) => &*c.body,
            _ => return,
        };
        self.loops += 1;
        let direct = query::future(body, self.transactions);
        match (direct, body) {
            (Some(counted), _) => self.in_loops.push(counted),
            (None, syn::Expr::Async(block)) => {
                let _ = self.block(&block.block);
            }
            (None, body) => {
                let _ = self.expr(body);
            }
        }
        self.loops -= 1;
    }

    fn mac(&mut self, mac: &syn::Macro) -> Flow {
        let name = mac.path.segments.last().map(|s| s.ident.to_string()).unwrap_or_default();
        if PANICS.contains(&name.as_str()) {
            return Flow::diverges();
        }
        let evaluates = EVALUATES.contains(&name.as_str());
        let joins = JOINS.contains(&name.as_str());
        if !evaluates && !joins {
            return Flow::empty();
        }
        let parser = syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated;
        let Ok(args) = syn::parse::Parser::parse2(parser, mac.tokens.clone()) else { return Flow::empty() };
        if !joins {
            return self.seq(&args);
        }
        // `join!(a, b)` awaits each: a query future given to it runs.
        args.iter().fold(Flow::empty(), |flow, arg| {
            let next = match (query::future(arg, self.transactions), arg) {
                (Some(counted), _) => self.counted(counted),
                (None, syn::Expr::Async(block)) => self.block(&block.block),
                (None, arg) => self.expr(arg),
            };
            flow.then(next)
        })
    }
}
