//! Runs a parsed template against a dot, as Go's `text/template` executes it.

use std::collections::HashMap;

use super::limits::{self, Limits};
use super::parse::{Arg, Branch, Command, Constant, Node, Pipe, Tree};
use super::value::{Func, FuncError, Number, NumberKind, Value};

/// Calls method NAME of a typed value with ARGS; `None` when it has no such method.
pub type Method = fn(&Value, &str, &[Value]) -> Option<Result<Value, FuncError>>;

/// The deepest `template` calls may nest.
pub(super) const MAX_TEMPLATE_DEPTH: usize = 100;

/// The deepest a value made during a render may nest (lists in lists, maps in maps).
pub(super) const MAX_VALUE_DEPTH: usize = 200;

/// What a render needs besides the tree and the dot.
pub(super) struct Options<'a> {
    pub funcs: &'a HashMap<String, Func>,
    pub missing_key_error: bool,
    pub limits: Limits,
    pub methods: Method,
}

/// A render error: where (byte offset, the node's text), in which template, and what.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ExecError {
    pub template: String,
    pub pos: usize,
    pub context: String,
    pub message: String,
}

/// Non-local exits of a walk.
enum Flow {
    Normal,
    Break,
    Continue,
}

type Res<T> = Result<T, Box<ExecError>>;

pub(super) struct State<'a> {
    tree: &'a Tree,
    opts: &'a Options<'a>,
    name: String,
    vars: Vec<(String, Value)>,
    out: String,
    depth: usize,
    iterations: usize,
    /// The node being evaluated, for error messages: position and text.
    at: (usize, String),
}

/// Executes `tree` (named `name`) with `dot`.
pub(super) fn execute(tree: &Tree, name: &str, dot: Value, opts: &Options<'_>) -> Res<String> {
    let _limits = limits::Active::set(opts.limits);
    let mut s = State {
        tree,
        opts,
        name: name.to_string(),
        vars: vec![("$".to_string(), dot.clone())],
        out: String::new(),
        depth: 0,
        iterations: 0,
        at: (0, String::new()),
    };
    s.walk_list(&dot, &tree.root)?;
    Ok(s.out)
}

impl State<'_> {
    fn fail<T>(&self, message: impl Into<String>) -> Res<T> {
        Err(Box::new(ExecError {
            template: self.name.clone(),
            pos: self.at.0,
            context: self.at.1.clone(),
            message: message.into(),
        }))
    }

    /// An argument that does not convert to its parameter's type: Go converts before the
    /// call, so it names the argument (or, for the piped value, the command) and not the call.
    fn fail_conversion<T>(
        &mut self,
        message: String,
        args: &[Arg],
        values: &[Value],
        mut ats: Vec<(usize, String)>,
    ) -> Res<T> {
        // a piped value that does not convert is reported where evaluation stood
        let Some(i) = conversion_culprit(&message, values).filter(|&i| i < args.len()) else {
            return self.fail(message);
        };
        self.at = std::mem::take(&mut ats[i]);
        self.fail(go_conversion_message(&message, &args[i], &values[i]))
    }

    fn at_node(&mut self, pos: usize, text: String) {
        self.at = (pos, text);
    }

    fn write(&mut self, text: &str) -> Res<()> {
        if let Some(limit) = self.opts.limits.output_bytes
            && self.out.len() + text.len() > limit
        {
            return self.fail(format!("output of more than {limit} bytes"));
        }
        self.out.push_str(text);
        Ok(())
    }

    fn check_deadline(&self) -> Res<()> {
        if limits::expired() {
            return self.fail("the render took longer than its deadline");
        }
        Ok(())
    }

    fn walk_list(&mut self, dot: &Value, list: &[Node]) -> Res<Flow> {
        for node in list {
            match self.walk(dot, node)? {
                Flow::Normal => {}
                other => return Ok(other),
            }
        }
        Ok(Flow::Normal)
    }

    fn walk(&mut self, dot: &Value, node: &Node) -> Res<Flow> {
        self.check_deadline()?;
        match node {
            Node::Text(t) => self.write(t)?,
            Node::Action(pipe) => {
                let v = self.pipeline(dot, pipe)?;
                if pipe.vars.is_empty() {
                    let text = print_value(&v);
                    self.write(&text)?;
                }
            }
            Node::If(b) => return self.if_or_with(dot, b, false),
            Node::With(b) => return self.if_or_with(dot, b, true),
            Node::Range(b) => return self.range(dot, b),
            Node::Break(_) => return Ok(Flow::Break),
            Node::Continue(_) => return Ok(Flow::Continue),
            Node::Template { pos, name, pipe } => {
                self.at_node(*pos, format!("{{{{template {name:?}}}}}"));
                let Some(list) = self.tree.defines.get(name) else {
                    return self.fail(format!("template {name:?} not defined"));
                };
                if self.depth >= MAX_TEMPLATE_DEPTH {
                    return self.fail(format!(
                        "exceeded maximum template depth ({MAX_TEMPLATE_DEPTH})"
                    ));
                }
                let new_dot = match pipe {
                    Some(p) => self.pipeline(dot, p)?,
                    None => Value::NoValue,
                };
                let vars = std::mem::replace(&mut self.vars, vec![("$".into(), new_dot.clone())]);
                let outer = std::mem::replace(&mut self.name, name.clone());
                self.depth += 1;
                let result = self.walk_list(&new_dot, list);
                self.depth -= 1;
                self.name = outer;
                self.vars = vars;
                result?;
            }
        }
        Ok(Flow::Normal)
    }

    fn if_or_with(&mut self, dot: &Value, b: &Branch, with: bool) -> Res<Flow> {
        let mark = self.vars.len();
        let v = self.pipeline(dot, &b.pipe)?;
        let flow = if v.truthy() {
            if with {
                self.walk_list(&v, &b.list)?
            } else {
                self.walk_list(dot, &b.list)?
            }
        } else if let Some(e) = &b.else_list {
            self.walk_list(dot, e)?
        } else {
            Flow::Normal
        };
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn range(&mut self, dot: &Value, b: &Branch) -> Res<Flow> {
        let mark = self.vars.len();
        // the pipeline without its declaration: range binds the variables itself
        let decl = Pipe {
            vars: Vec::new(),
            ..b.pipe.clone()
        };
        let v = self.pipeline(dot, &decl)?;
        let items: Vec<(Value, Value)> = match &v {
            Value::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, e)| (Value::from(i), e.clone()))
                .collect(),
            Value::Map(m) | Value::Object(m) => {
                let m = m.read();
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                keys.into_iter()
                    .map(|k| (Value::String(k.clone()), m[k].clone()))
                    .collect()
            }
            Value::NoValue | Value::Nil => Vec::new(),
            Value::Number(n) => match n.kind() {
                NumberKind::Float(_) => {
                    return self.fail(format!("range can't iterate over {v}"));
                }
                _ => {
                    if b.pipe.vars.len() > 1 {
                        return self.fail(format!(
                            "can't use {v} to iterate over more than one variable"
                        ));
                    }
                    let count = n.as_i64().unwrap_or(i64::MAX).max(0);
                    if let Some(limit) = self.opts.limits.iterations
                        && count as u64 > limit as u64
                    {
                        return self.fail(format!(
                            "range of {count} iterations is more than the {limit} this allows"
                        ));
                    }
                    (0..count)
                        .map(|i| (Value::from(i), Value::from(i)))
                        .collect()
                }
            },
            other => return self.fail(format!("range can't iterate over {other}")),
        };
        if let Some(limit) = self.opts.limits.iterations
            && items.len() > limit
        {
            return self.fail(format!(
                "range of {} iterations is more than the {limit} this allows",
                items.len()
            ));
        }
        if items.is_empty() {
            let flow = match &b.else_list {
                Some(e) => self.walk_list(dot, e)?,
                None => Flow::Normal,
            };
            self.vars.truncate(mark);
            return Ok(flow);
        }
        for (key, elem) in items {
            self.iterations += 1;
            if let Some(limit) = self.opts.limits.total_iterations
                && self.iterations > limit
            {
                return self.fail(format!("more than {limit} range iterations in one render"));
            }
            self.check_deadline()?;
            let inner = self.vars.len();
            match b.pipe.vars.as_slice() {
                [] => {}
                [one] => self.bind(one, elem.clone(), b.pipe.assign),
                [k, e, ..] => {
                    self.bind(k, key, b.pipe.assign);
                    self.bind(e, elem.clone(), b.pipe.assign);
                }
            }
            let flow = self.walk_list(&elem, &b.list)?;
            self.vars.truncate(inner);
            if matches!(flow, Flow::Break) {
                break;
            }
        }
        self.vars.truncate(mark);
        Ok(Flow::Normal)
    }

    fn bind(&mut self, name: &str, v: Value, assign: bool) {
        if assign && let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            slot.1 = v;
            return;
        }
        self.vars.push((name.to_string(), v));
    }

    fn var(&self, name: &str) -> Res<Value> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => self.fail(format!("undefined variable: {name}")),
        }
    }

    fn pipeline(&mut self, dot: &Value, pipe: &Pipe) -> Res<Value> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            // an interface holding nil is no value at all once it leaves a command
            value = Some(match self.command(dot, cmd, value)? {
                Value::Nil => Value::NoValue,
                Value::Number(n) => Value::Number(n.plain()),
                other => other,
            });
        }
        let value = value.unwrap_or(Value::NoValue);
        for name in &pipe.vars {
            self.bind(name, value.clone(), pipe.assign);
        }
        Ok(value)
    }

    fn command(&mut self, dot: &Value, cmd: &Command, last: Option<Value>) -> Res<Value> {
        self.at_node(cmd.pos, command_text(cmd));
        let first = &cmd.args[0];
        let rest = &cmd.args[1..];
        match first {
            Arg::Func(name) => self.call(dot, name, rest, last, cmd),
            Arg::Field(chain) => {
                self.at_node(arg_pos(cmd, usize::MAX), arg_text(first));
                self.field_chain(dot, dot.clone(), chain, rest, last, rest_pos(cmd))
            }
            Arg::Variable(name, chain) => {
                self.at_node(arg_pos(cmd, usize::MAX), arg_text(first));
                let v = self.var(name)?;
                if chain.is_empty() {
                    self.not_a_function(first, rest, &last)?;
                    return Ok(v);
                }
                self.field_chain(dot, v, chain, rest, last, rest_pos(cmd))
            }
            Arg::Pipe(p, chain) => {
                let v = self.pipeline(dot, p)?;
                // a chain after a pipeline fails where the pipeline's evaluation stopped, as
                // in Go
                if chain.is_empty() {
                    self.at_node(cmd.pos, command_text(cmd));
                    self.not_a_function(first, rest, &last)?;
                    return Ok(v);
                }
                self.field_chain(dot, v, chain, rest, last, rest_pos(cmd))
            }
            _ => {
                // Go's node is the operand itself
                self.at_node(arg_pos(cmd, usize::MAX), arg_text(first));
                self.not_a_function(first, rest, &last)?;
                if matches!(first, Arg::Nil) {
                    // Go parses it and refuses it when it runs
                    return self.fail("nil is not a command");
                }
                self.arg(dot, first)
            }
        }
    }

    fn not_a_function(&self, first: &Arg, rest: &[Arg], last: &Option<Value>) -> Res<()> {
        if !rest.is_empty() || last.is_some() {
            return self.fail(format!(
                "can't give argument to non-function {}",
                arg_text(first)
            ));
        }
        Ok(())
    }

    fn field_chain(
        &mut self,
        dot: &Value,
        mut receiver: Value,
        chain: &[String],
        args: &[Arg],
        last: Option<Value>,
        arg_at: &[usize],
    ) -> Res<Value> {
        let n = chain.len();
        let mut last = last;
        // Go names the static type in its errors: a value taken from a
        // map[string]interface{} within the chain is an `interface {}`
        let mut iface = false;
        for (i, name) in chain.iter().enumerate() {
            let from_iface_map = matches!(receiver, Value::Map(_));
            let final_link = i + 1 == n;
            let has_args = final_link && (!args.is_empty() || last.is_some());
            if let Value::Typed(_) = receiver {
                let mut values = Vec::new();
                let mut ats = Vec::new();
                if final_link {
                    for (i, a) in args.iter().enumerate() {
                        if let Some(&pos) = arg_at.get(i) {
                            self.at_node(pos, arg_text(a));
                        }
                        values.push(self.arg(dot, a)?);
                        ats.push(self.at.clone());
                    }
                    values.extend(last.take());
                }
                let call = (args, values.as_slice(), ats);
                receiver = self.method(&receiver, name, call, iface)?;
                iface = false;
                continue;
            }
            receiver = self.field(&receiver, name, has_args, iface)?;
            iface = from_iface_map;
        }
        Ok(receiver)
    }

    /// Calls a typed value's method with its arguments (as written, evaluated, and where each
    /// was evaluated).
    fn method(
        &mut self,
        receiver: &Value,
        name: &str,
        (args, values, ats): (&[Arg], &[Value], Vec<(usize, String)>),
        iface: bool,
    ) -> Res<Value> {
        match (self.opts.methods)(receiver, name, values) {
            Some(Ok(v)) => Ok(v),
            // an argument that does not convert to the method's parameter, as for functions
            Some(Err(e))
                if ats.len() == args.len()
                    && CONVERSION_ERRORS
                        .iter()
                        .any(|p| e.to_string().starts_with(p)) =>
            {
                self.fail_conversion(e.to_string(), args, values, ats)
            }
            // arguments that do not fit are Go's own errors, before any call
            Some(Err(e)) if e.to_string().starts_with("wrong number of args") => {
                self.fail(e.to_string())
            }
            Some(Err(e)) => self.fail(format!("error calling {name}: {e}")),
            None => self.fail(format!(
                "can't evaluate field {name} in type {}",
                static_type(receiver, iface)
            )),
        }
    }

    fn field(&mut self, receiver: &Value, name: &str, has_args: bool, iface: bool) -> Res<Value> {
        match receiver {
            Value::NoValue => {
                if self.opts.missing_key_error {
                    return self.fail(format!("nil data; no entry for key {name:?}"));
                }
                Ok(Value::NoValue)
            }
            Value::Nil => self.fail(format!("nil pointer evaluating interface {{}}.{name}")),
            Value::Map(m) | Value::Object(m) => {
                if has_args {
                    return self.fail(format!("{name} is not a method but has arguments"));
                }
                match m.get(name) {
                    Some(v) => Ok(v),
                    None if self.opts.missing_key_error => {
                        self.fail(format!("map has no entry for key {name:?}"))
                    }
                    None => Ok(Value::NoValue),
                }
            }
            other => self.fail(format!(
                "can't evaluate field {name} in type {}",
                static_type(other, iface)
            )),
        }
    }

    fn arg(&mut self, dot: &Value, arg: &Arg) -> Res<Value> {
        Ok(match arg {
            Arg::Dot => dot.clone(),
            Arg::Nil => Value::Nil,
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Str(s, _) => Value::String(s.clone()),
            Arg::Number(c, text) => match c {
                Constant::Int(i) => Value::from(*i),
                Constant::Float(f) => Value::Number(Number::float_constant(*f)),
                Constant::Overflow(_) => return self.fail(format!("{text} overflows int")),
            },
            Arg::Field(chain) => self.field_chain(dot, dot.clone(), chain, &[], None, &[])?,
            Arg::Variable(name, chain) => {
                let v = self.var(name)?;
                self.field_chain(dot, v, chain, &[], None, &[])?
            }
            Arg::Pipe(p, chain) => {
                let v = self.pipeline(dot, p)?;
                self.field_chain(dot, v, chain, &[], None, &[])?
            }
            Arg::Func(name) => {
                let cmd = Command {
                    pos: self.at.0,
                    args: vec![arg.clone()],
                    arg_pos: vec![self.at.0],
                };
                self.call(dot, name, &[], None, &cmd)?
            }
        })
    }

    fn call(
        &mut self,
        dot: &Value,
        name: &str,
        args: &[Arg],
        last: Option<Value>,
        cmd: &Command,
    ) -> Res<Value> {
        if name == "and" || name == "or" {
            return self.and_or(dot, name == "and", args, last, cmd);
        }
        let Some(f) = self.opts.funcs.get(name).copied() else {
            return self.fail(format!("{name:?} is not a defined function"));
        };
        // as Go: the function's name, then each argument as it is evaluated; the command only
        // when the call itself fails
        self.at_node(cmd.pos, name.to_string());
        let mut values = Vec::with_capacity(args.len() + 1);
        // where evaluation stood after each argument: a pipeline's last node, as Go reports a
        // pipeline argument that does not convert
        let mut ats = Vec::with_capacity(args.len());
        for (i, a) in args.iter().enumerate() {
            self.at_node(arg_pos(cmd, i), arg_text(a));
            let v = self.arg(dot, a)?;
            values.push(v);
            ats.push(self.at.clone());
        }
        values.extend(last);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&values)));
        match result {
            Ok(Ok(Value::Number(n))) => Ok(Value::Number(n.plain())),
            Ok(Ok(v)) => {
                if too_deep(&v, MAX_VALUE_DEPTH) {
                    v.clear_maps();
                    self.at_node(cmd.pos, command_text(cmd));
                    return self.fail(format!(
                        "error calling {name}: a value nested deeper than {MAX_VALUE_DEPTH} levels, holding itself, or of more than {MAX_VALUE_ITEMS} items"
                    ));
                }
                Ok(v)
            }
            Ok(Err(e)) => {
                let message = e.to_string();
                if CONVERSION_ERRORS.iter().any(|p| message.starts_with(p)) {
                    return self.fail_conversion(message, args, &values, ats);
                }
                self.at_node(cmd.pos, command_text(cmd));
                self.fail(format!("error calling {name}: {message}"))
            }
            Err(_) => {
                self.at_node(cmd.pos, command_text(cmd));
                self.fail(format!("error calling {name}: the function failed"))
            }
        }
    }

    fn and_or(
        &mut self,
        dot: &Value,
        and: bool,
        args: &[Arg],
        last: Option<Value>,
        cmd: &Command,
    ) -> Res<Value> {
        let name = if and { "and" } else { "or" };
        if args.is_empty() && last.is_none() {
            self.at_node(cmd.pos, command_text(cmd));
            return self.fail(format!(
                "wrong number of args for {name}: want at least 1 got 0"
            ));
        }
        let mut v = Value::NoValue;
        for a in args {
            v = self.arg(dot, a)?;
            if v.truthy() != and {
                return Ok(v);
            }
        }
        if let Some(l) = last {
            v = l;
        }
        Ok(v)
    }
}

/// Whether `v` nests deeper than `max`, holds a map inside itself, or would print more than
/// [`MAX_VALUE_ITEMS`] items. Maps are shared, so a map reached twice is measured once (and
/// counted twice, as printing it would).
fn too_deep(v: &Value, max: usize) -> bool {
    /// Depth and items of a value, `None` when too deep, too large or cyclic.
    fn measure(
        v: &Value,
        path: &mut Vec<usize>,
        memo: &mut HashMap<usize, (usize, usize)>,
        max: usize,
    ) -> Option<(usize, usize)> {
        let mut depth = 0;
        let mut items = 1usize;
        let mut add = |child: (usize, usize)| {
            depth = depth.max(child.0 + 1);
            items = items.saturating_add(child.1);
        };
        match v {
            Value::Array(a) => {
                for e in a {
                    add(measure(e, path, memo, max)?);
                }
            }
            Value::Map(m) | Value::Object(m) => {
                let id = m.id();
                if let Some(known) = memo.get(&id) {
                    return Some(*known);
                }
                if path.contains(&id) {
                    return None;
                }
                path.push(id);
                let children: Vec<Value> = m.read().values().cloned().collect();
                for e in &children {
                    match measure(e, path, memo, max) {
                        Some(child) => add(child),
                        None => {
                            path.pop();
                            return None;
                        }
                    }
                }
                path.pop();
                memo.insert(id, (depth, items));
            }
            _ => {}
        }
        (depth <= max && items <= MAX_VALUE_ITEMS).then_some((depth, items))
    }
    measure(v, &mut Vec::new(), &mut HashMap::new(), max).is_none()
}

/// The most items (values in lists and maps, counted as often as they would print) a value
/// made during a render may hold.
pub(super) const MAX_VALUE_ITEMS: usize = 1_000_000;

/// The type Go names for a value: `interface {}` when it came out of an interface map.
fn static_type(v: &Value, iface: bool) -> &'static str {
    if iface { "interface {}" } else { type_name(v) }
}

/// Where Go's node for argument `i` of a call (operand `i + 1`) starts; `usize::MAX` for the
/// command's first operand.
/// Where the arguments after a command's first word start.
fn rest_pos(cmd: &Command) -> &[usize] {
    cmd.arg_pos.get(1..).unwrap_or_default()
}

fn arg_pos(cmd: &Command, i: usize) -> usize {
    cmd.arg_pos
        .get(i.wrapping_add(1))
        .copied()
        .unwrap_or(cmd.pos)
}

/// How the functions' parameter conversions (`go.rs`) begin their messages: Go's own texts for
/// an argument that does not convert.
const CONVERSION_ERRORS: [&str; 6] = [
    "expected string; found ",
    "expected integer; found ",
    "expected bool; found ",
    "cannot assign nil to ",
    "invalid value; expected ",
    "wrong type for value; expected ",
];

/// A conversion error as Go words it: a constant of the wrong kind is "expected KIND; found
/// NODE", any other value "wrong type for value; expected TYPE; got TYPE".
fn go_conversion_message(message: &str, arg: &Arg, value: &Value) -> String {
    if message.starts_with("cannot assign nil") || message.starts_with("invalid value") {
        return message.to_string();
    }
    let wanted = [
        ("expected string", "string", "string"),
        ("expected int", "int", "integer"),
        ("expected bool", "bool", "bool"),
    ]
    .into_iter()
    .find(|(needle, _, _)| message.contains(needle));
    let Some((_, type_name_wanted, kind)) = wanted else {
        // a constant for a parameter of another type (`*semver.Version`): Go's evalArg
        // cannot make one
        if let (Arg::Str(..) | Arg::Bool(_) | Arg::Number(..), Some(rest)) =
            (arg, message.strip_prefix("wrong type for value; expected "))
        {
            let wanted = rest.split_once("; got ").map_or(rest, |(w, _)| w);
            return format!("can't handle {} for arg of type {wanted}", arg_text(arg));
        }
        return message.to_string();
    };
    match arg {
        Arg::Str(..) | Arg::Bool(_) | Arg::Number(..) => {
            format!("expected {kind}; found {}", arg_text(arg))
        }
        _ => format!(
            "wrong type for value; expected {type_name_wanted}; got {}",
            type_name(value)
        ),
    }
}

/// Which argument a conversion error is about: the first one of the kind it names.
fn conversion_culprit(message: &str, values: &[Value]) -> Option<usize> {
    let is_float = |v: &Value| matches!(v, Value::Number(n) if n.as_f64().is_some());
    // "found X": the argument that prints as X (strings quoted)
    if let Some((_, shown)) = message.split_once("; found ") {
        let printed = |v: &Value| match v {
            Value::String(s) => super::super::go::go_quote(s),
            other => other.to_string(),
        };
        if let Some(i) = values.iter().position(|v| printed(v) == shown) {
            return Some(i);
        }
    }
    values.iter().position(|v| {
        if message.starts_with("cannot assign nil") {
            matches!(v, Value::Nil)
        } else if message.starts_with("invalid value") {
            matches!(v, Value::NoValue)
        } else if message.starts_with("expected string") {
            matches!(v, Value::Number(_) | Value::Bool(_))
        } else if message.starts_with("expected integer") {
            is_float(v) || matches!(v, Value::Bool(_))
        } else if message.starts_with("expected bool") {
            !matches!(v, Value::Bool(_) | Value::Nil | Value::NoValue)
                && !matches!(
                    v,
                    Value::Typed(_) | Value::Array(_) | Value::Map(_) | Value::Object(_)
                )
        } else {
            message
                .rsplit_once("; got ")
                .is_some_and(|(_, got)| type_name(v) == got)
        }
    })
}

/// How an action prints a value.
pub(super) fn print_value(v: &Value) -> String {
    v.to_string()
}

/// Go's name of a value's type, for the evaluator's messages.
pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::NoValue | Value::Nil => "<nil>",
        Value::Bool(_) => "bool",
        Value::String(_) => "string",
        Value::Array(l) => l.type_name(),
        Value::Map(_) => "map[string]interface {}",
        Value::Object(_) => "map[string]string",
        Value::Typed(t) => t.type_name,
        Value::Number(n) => match n.kind() {
            NumberKind::Float(_) => "float64",
            NumberKind::Signed(_) => "int64",
            _ => "int",
        },
    }
}

/// A command as Go prints its node.
pub(super) fn command_text(cmd: &Command) -> String {
    cmd.args.iter().map(arg_text).collect::<Vec<_>>().join(" ")
}

fn pipe_text(p: &Pipe) -> String {
    let mut s = String::new();
    if !p.vars.is_empty() {
        s.push_str(&p.vars.join(", "));
        s.push_str(if p.assign { " = " } else { " := " });
    }
    s.push_str(
        &p.cmds
            .iter()
            .map(command_text)
            .collect::<Vec<_>>()
            .join(" | "),
    );
    s
}

fn chain_text(chain: &[String]) -> String {
    chain.iter().map(|f| format!(".{f}")).collect()
}

/// An operand as Go prints its node.
pub(super) fn arg_text(a: &Arg) -> String {
    match a {
        Arg::Dot => ".".into(),
        Arg::Nil => "nil".into(),
        Arg::Bool(b) => b.to_string(),
        Arg::Number(_, text) => text.clone(),
        Arg::Str(_, quoted) => quoted.clone(),
        Arg::Field(chain) => chain_text(chain),
        Arg::Variable(v, chain) => format!("{v}{}", chain_text(chain)),
        Arg::Func(name) => name.clone(),
        Arg::Pipe(p, chain) => format!("({}){}", pipe_text(p), chain_text(chain)),
    }
}
