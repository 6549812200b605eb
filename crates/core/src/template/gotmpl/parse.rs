//! Go's template parser: the token stream into a tree of lists, actions and control blocks,
//! with Go's parse-time checks (functions defined, variables declared, `break` inside `range`)
//! and a bound on nesting.

use std::collections::HashMap;

use super::lex::{Tok, Token, lex};

/// The deepest parentheses and blocks may nest together.
pub const MAX_NESTING: usize = 64;

/// A parsed number constant.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Constant {
    /// An integer that fits an `int`.
    Int(i64),
    /// A float (written with `.`, `e` or `p`).
    Float(f64),
    /// An integer past `int64` (Go refuses it when it is used).
    Overflow(String),
}

/// One operand of a command.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Arg {
    /// `.`
    Dot,
    /// `nil`
    Nil,
    /// `true`/`false`
    Bool(bool),
    /// A number or character constant.
    Number(Constant, String),
    /// A string constant: its value and its text as written.
    Str(String, String),
    /// `.a.b` on the dot.
    Field(Vec<String>),
    /// `$x.a.b` (empty chain for the variable itself).
    Variable(String, Vec<String>),
    /// A function name.
    Func(String),
    /// `(pipeline)` with an optional field chain after it.
    Pipe(Box<Pipe>, Vec<String>),
}

/// A command: operands separated by spaces.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Command {
    pub pos: usize,
    pub args: Vec<Arg>,
    /// Where Go's node for each operand starts: the token, or for a field chain after a term
    /// (`.a.b`, `$x.a`, `(p).a`) the first chained field, as Go's `ChainNode` does.
    pub arg_pos: Vec<usize>,
}

/// A pipeline with its optional variable declaration or assignment.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Pipe {
    pub pos: usize,
    /// `=` rather than `:=`.
    pub assign: bool,
    pub vars: Vec<String>,
    pub cmds: Vec<Command>,
}

/// A node of a template's tree.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    Text(String),
    Action(Pipe),
    If(Branch),
    With(Branch),
    Range(Branch),
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break(usize),
    Continue(usize),
}

/// The parts of `if`, `with` and `range`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Branch {
    pub pos: usize,
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

/// A parsed template and the templates it defines.
#[derive(Debug, Clone, Default)]
pub(super) struct Tree {
    pub root: Vec<Node>,
    pub defines: HashMap<String, Vec<Node>>,
}

/// A parse error: message and byte offset.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ParseError {
    pub pos: usize,
    pub message: String,
}

/// Parses `src`; `funcs` are the defined function names.
pub(super) fn parse(src: &str, funcs: &dyn Fn(&str) -> bool) -> Result<Tree, ParseError> {
    let toks = lex(src).map_err(|e| ParseError {
        pos: e.pos,
        message: e.message,
    })?;
    let mut p = Parser {
        toks,
        i: 0,
        funcs,
        vars: vec!["$".to_string()],
        depth: 0,
        range_depth: 0,
        tree: Tree::default(),
        src_len: src.len(),
    };
    let root = p.top()?;
    p.tree.root = root;
    Ok(p.tree)
}

const BUILTIN_KEYWORDS: [&str; 10] = [
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
];

/// How a list ended.
enum End {
    Eof,
    Done,
    Else,
}

struct Parser<'a> {
    toks: Vec<Token>,
    i: usize,
    funcs: &'a dyn Fn(&str) -> bool,
    vars: Vec<String>,
    depth: usize,
    range_depth: usize,
    tree: Tree,
    src_len: usize,
}

impl Parser<'_> {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            pos: self.pos(),
            message: message.into(),
        })
    }

    fn pos(&self) -> usize {
        self.toks.get(self.i).map_or(self.src_len, |t| t.pos)
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.tok)
    }

    fn peek_non_space(&self) -> Option<&Tok> {
        let mut j = self.i;
        while let Some(Tok::Space) = self.toks.get(j).map(|t| &t.tok) {
            j += 1;
        }
        self.toks.get(j).map(|t| &t.tok)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.i).map(|t| t.tok.clone());
        self.i += 1;
        t
    }

    fn skip_space(&mut self) {
        while let Some(Tok::Space) = self.peek() {
            self.i += 1;
        }
    }

    fn next_non_space(&mut self) -> Option<Tok> {
        self.skip_space();
        self.next()
    }

    fn deeper(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return self.err(format!(
                "nesting deeper than {MAX_NESTING} levels of parentheses and blocks"
            ));
        }
        Ok(())
    }

    fn top(&mut self) -> Result<Vec<Node>, ParseError> {
        let (list, end) = self.list(true)?;
        match end {
            End::Eof => Ok(list),
            End::Done => self.err("unexpected {{end}}"),
            End::Else => self.err("unexpected {{else}}"),
        }
    }

    /// Nodes up to `{{end}}`, `{{else}}` or the end of input.
    fn list(&mut self, top: bool) -> Result<(Vec<Node>, End), ParseError> {
        let mut nodes = Vec::new();
        loop {
            match self.next() {
                None => return Ok((nodes, End::Eof)),
                Some(Tok::Text(t)) => nodes.push(Node::Text(t)),
                Some(Tok::Open) => {
                    let pos = self.pos();
                    let word = match self.peek_non_space() {
                        Some(Tok::Ident(w)) if BUILTIN_KEYWORDS.contains(&w.as_str()) => {
                            Some(w.clone())
                        }
                        _ => None,
                    };
                    let Some(word) = word else {
                        let pipe = self.pipeline("command", true)?;
                        nodes.push(Node::Action(pipe));
                        continue;
                    };
                    self.skip_space();
                    self.i += 1;
                    match word.as_str() {
                        "end" => {
                            self.close()?;
                            return Ok((nodes, End::Done));
                        }
                        "else" => return Ok((nodes, End::Else)),
                        "if" | "with" | "range" => {
                            let node = self.branch(&word, pos)?;
                            nodes.push(node);
                        }
                        "define" => {
                            if !top {
                                return self.err("unexpected <define> in command");
                            }
                            self.define()?;
                        }
                        "block" => {
                            let (name, pipe) = self.template_clause("block")?;
                            self.deeper()?;
                            let (list, end) = self.list(false)?;
                            self.depth -= 1;
                            if !matches!(end, End::Done) {
                                return self.err("unexpected EOF");
                            }
                            self.tree.defines.insert(name.clone(), list);
                            nodes.push(Node::Template { pos, name, pipe });
                        }
                        "template" => {
                            // Go's node starts at the name
                            let pos = self.toks[self.i..]
                                .iter()
                                .find(|t| !matches!(t.tok, Tok::Space))
                                .map_or(pos, |t| t.pos);
                            let (name, pipe) = self.template_clause("template")?;
                            nodes.push(Node::Template { pos, name, pipe });
                        }
                        "break" | "continue" => {
                            if self.range_depth == 0 {
                                return self.err(format!("{{{{{word}}}}} outside {{{{range}}}}"));
                            }
                            self.close()?;
                            nodes.push(if word == "break" {
                                Node::Break(pos)
                            } else {
                                Node::Continue(pos)
                            });
                        }
                        _ => return self.err(format!("unexpected {word}")),
                    }
                }
                Some(other) => return self.err(format!("unexpected {other:?}")),
            }
        }
    }

    /// Expects the action's closing delimiter.
    fn close(&mut self) -> Result<(), ParseError> {
        match self.next_non_space() {
            Some(Tok::Close) => Ok(()),
            None => self.err("unclosed action"),
            Some(t) => self.err(format!("unexpected {} in end", describe(&t))),
        }
    }

    fn define(&mut self) -> Result<(), ParseError> {
        let name = match self.next_non_space() {
            Some(Tok::Str(s, _)) => s,
            _ => return self.err("unexpected token in define clause"),
        };
        self.close()?;
        let saved = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        self.deeper()?;
        let (list, end) = self.list(false)?;
        self.depth -= 1;
        self.vars = saved;
        if !matches!(end, End::Done) {
            return self.err("unexpected EOF");
        }
        self.tree.defines.insert(name, list);
        Ok(())
    }

    fn template_clause(&mut self, context: &str) -> Result<(String, Option<Pipe>), ParseError> {
        let name = match self.next_non_space() {
            Some(Tok::Str(s, _)) => s,
            _ => return self.err(format!("unexpected token in {context} clause")),
        };
        if let Some(Tok::Close) = self.peek_non_space() {
            self.skip_space();
            self.i += 1;
            return Ok((name, None));
        }
        let pipe = self.pipeline(context, false)?;
        Ok((name, Some(pipe)))
    }

    fn branch(&mut self, word: &str, pos: usize) -> Result<Node, ParseError> {
        self.deeper()?;
        let mark = self.vars.len();
        let pipe = self.pipeline(word, true)?;
        if word == "range" {
            self.range_depth += 1;
        }
        let (list, end) = self.list(false)?;
        if word == "range" {
            self.range_depth -= 1;
        }
        let else_list = match end {
            End::Eof => return self.err("unexpected EOF"),
            End::Done => None,
            End::Else => {
                // `else if` / `else with` chain into a nested block that shares the {{end}}
                let chained = match self.peek_non_space() {
                    Some(Tok::Ident(w))
                        if (w == "if" && word == "if") || (w == "with" && word == "with") =>
                    {
                        Some(w.clone())
                    }
                    _ => None,
                };
                if let Some(w) = chained {
                    self.skip_space();
                    let inner_pos = self.pos();
                    self.i += 1;
                    let node = self.branch(&w, inner_pos)?;
                    Some(vec![node])
                } else {
                    self.close()?;
                    let (else_list, end) = self.list(false)?;
                    if !matches!(end, End::Done) {
                        return self.err(if matches!(end, End::Eof) {
                            "unexpected EOF".to_string()
                        } else {
                            "expected end; found {{else}}".to_string()
                        });
                    }
                    Some(else_list)
                }
            }
        };
        self.vars.truncate(mark);
        self.depth -= 1;
        let branch = Branch {
            pos,
            pipe,
            list,
            else_list,
        };
        Ok(match word {
            "if" => Node::If(branch),
            "with" => Node::With(branch),
            _ => Node::Range(branch),
        })
    }

    /// A pipeline up to `}}` (or `)` inside parentheses, when `in_parens`).
    fn pipeline(&mut self, context: &str, allow_decl: bool) -> Result<Pipe, ParseError> {
        self.pipeline_until(context, allow_decl, false)
    }

    fn pipeline_until(
        &mut self,
        context: &str,
        allow_decl: bool,
        in_parens: bool,
    ) -> Result<Pipe, ParseError> {
        self.skip_space();
        let pos = self.pos();
        let mut vars = Vec::new();
        let mut assign = false;
        // declarations: $x := / $x = / $i, $e :=
        if allow_decl && let Some((names, is_assign)) = self.declaration(context == "range") {
            if is_assign {
                for n in &names {
                    if !self.vars.contains(n) {
                        return self.err(format!("undefined variable \"{n}\""));
                    }
                }
            } else {
                self.vars.extend(names.iter().cloned());
            }
            assign = is_assign;
            vars = names;
        }
        let mut cmds = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                Some(Tok::Close) if !in_parens => {
                    self.i += 1;
                    break;
                }
                Some(Tok::RParen) if in_parens => {
                    self.i += 1;
                    break;
                }
                None => {
                    return self.err(if in_parens {
                        "unclosed left paren"
                    } else {
                        "unclosed action"
                    });
                }
                _ => {}
            }
            let cmd = self.command(in_parens)?;
            cmds.push(cmd);
            self.skip_space();
            // (Go 1.19 accepts a trailing `|`)
            if let Some(Tok::Pipe) = self.peek() {
                self.i += 1;
            }
        }
        if cmds.is_empty() {
            return self.err(format!("missing value for {context}"));
        }
        for (n, c) in cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args.first(),
                Some(Arg::Bool(_) | Arg::Dot | Arg::Nil | Arg::Number(..) | Arg::Str(..))
            ) {
                return self.err(format!(
                    "non executable command in pipeline stage {}",
                    n + 1
                ));
            }
        }
        Ok(Pipe {
            pos,
            assign,
            vars,
            cmds,
        })
    }

    /// `$x :=`, `$x =` or (in `range`) `$i, $e :=` at the cursor: the names and whether it
    /// assigns. The cursor moves past it only when there is one.
    fn declaration(&mut self, two: bool) -> Option<(Vec<String>, bool)> {
        let save = self.i;
        let mut names = Vec::new();
        while let Some(Tok::Variable(v)) = self.peek().cloned() {
            self.i += 1;
            self.skip_space();
            names.push(v);
            match self.next() {
                Some(Tok::Declare) => return Some((names, false)),
                Some(Tok::Assign) => return Some((names, true)),
                Some(Tok::Comma) if two && names.len() == 1 => self.skip_space(),
                _ => break,
            }
        }
        self.i = save;
        None
    }

    fn command(&mut self, in_parens: bool) -> Result<Command, ParseError> {
        let pos = self.pos();
        let mut args = Vec::new();
        let mut arg_pos = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                Some(Tok::Close) | Some(Tok::Pipe) | None => break,
                Some(Tok::RParen) if in_parens => break,
                _ => {}
            }
            let (arg, at) = self.operand()?;
            args.push(arg);
            arg_pos.push(at);
            match self.peek() {
                Some(Tok::Space) => {}
                Some(Tok::Close) | Some(Tok::Pipe) | None => break,
                Some(Tok::RParen) if in_parens => break,
                Some(t) => {
                    let t = t.clone();
                    return self.err(format!("unexpected {} in operand", describe(&t)));
                }
            }
        }
        if args.is_empty() {
            return self.err("empty command");
        }
        Ok(Command { pos, args, arg_pos })
    }

    /// An operand and where Go's node for it starts.
    fn operand(&mut self) -> Result<(Arg, usize), ParseError> {
        let start = self.pos();
        let term = self.term()?;
        let chain_pos = self.pos();
        let before = self.i;
        let arg = self.chained(term)?;
        let at = if self.i > before { chain_pos } else { start };
        Ok((arg, at))
    }

    /// `term` with the field chain that follows it.
    fn chained(&mut self, term: Arg) -> Result<Arg, ParseError> {
        // a field chain after a term
        let mut chain = Vec::new();
        while let Some(Tok::Field(f)) = self.peek() {
            chain.push(f.clone());
            self.i += 1;
        }
        if chain.is_empty() {
            return Ok(term);
        }
        match term {
            Arg::Field(mut f) => {
                f.extend(chain);
                Ok(Arg::Field(f))
            }
            Arg::Variable(v, mut f) => {
                f.extend(chain);
                Ok(Arg::Variable(v, f))
            }
            Arg::Pipe(p, mut f) => {
                f.extend(chain);
                Ok(Arg::Pipe(p, f))
            }
            Arg::Dot => self.err("unexpected . after term \".\""),
            // `now.Year`: the function's result, then the fields
            Arg::Func(name) => {
                let pos = self.pos();
                let cmd = Command {
                    pos,
                    args: vec![Arg::Func(name)],
                    arg_pos: vec![pos],
                };
                let pipe = Pipe {
                    pos,
                    assign: false,
                    vars: Vec::new(),
                    cmds: vec![cmd],
                };
                Ok(Arg::Pipe(Box::new(pipe), chain))
            }
            Arg::Bool(_) | Arg::Str(..) | Arg::Number(..) | Arg::Nil => {
                self.err(format!("unexpected . after term {:?}", chain[0]))
            }
        }
    }

    fn term(&mut self) -> Result<Arg, ParseError> {
        let Some(tok) = self.next() else {
            return self.err("unexpected EOF");
        };
        Ok(match tok {
            Tok::Ident(name) => {
                if BUILTIN_KEYWORDS.contains(&name.as_str()) || !(self.funcs)(&name) {
                    self.i -= 1;
                    return self.err(format!("function {name:?} not defined"));
                }
                Arg::Func(name)
            }
            Tok::Dot => Arg::Dot,
            Tok::Nil => Arg::Nil,
            Tok::Bool(b) => Arg::Bool(b),
            Tok::Str(s, quoted) => Arg::Str(s, quoted),
            Tok::Char(c) => Arg::Number(Constant::Int(i64::from(u32::from(c))), format!("{c:?}")),
            Tok::Number(text) => {
                let c = number(&text).map_err(|m| ParseError {
                    pos: self.toks[self.i - 1].pos,
                    message: m,
                })?;
                Arg::Number(c, text)
            }
            Tok::Field(f) => Arg::Field(vec![f]),
            Tok::Variable(v) => {
                if !self.vars.contains(&v) {
                    self.i -= 1;
                    return self.err(format!("undefined variable {v:?}"));
                }
                Arg::Variable(v, Vec::new())
            }
            Tok::LParen => {
                self.deeper()?;
                let pipe = self.pipeline_until("parenthesized pipeline", false, true)?;
                self.depth -= 1;
                Arg::Pipe(Box::new(pipe), Vec::new())
            }
            other => {
                self.i -= 1;
                return self.err(format!("unexpected {} in operand", describe(&other)));
            }
        })
    }
}

/// A token as Go's parse errors name it.
fn describe(t: &Tok) -> String {
    match t {
        Tok::Close => "\"}}\"".into(),
        Tok::Open => "\"{{\"".into(),
        Tok::RParen => "\")\"".into(),
        Tok::LParen => "\"(\"".into(),
        Tok::Pipe => "\"|\"".into(),
        Tok::Comma => "\",\"".into(),
        Tok::Assign => "\"=\"".into(),
        Tok::Declare => "\":=\"".into(),
        Tok::Ident(s) | Tok::Number(s) => format!("<{s}>"),
        Tok::Field(s) => format!("<.{s}>"),
        Tok::Variable(s) => format!("<{s}>"),
        Tok::Str(s, _) => format!("{s:?}"),
        other => format!("{other:?}"),
    }
}

/// A number constant's value as Go's parser reads it.
fn number(text: &str) -> Result<Constant, String> {
    let illegal = || format!("illegal number syntax: {text:?}");
    if text.ends_with('i') && !text.to_ascii_lowercase().starts_with("0x") {
        return Err(format!("complex numbers are not supported: {text:?}"));
    }
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if body.starts_with('_') || body.ends_with('_') || body.contains("__") {
        return Err(illegal());
    }
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if lower.len() > 1
        && lower.starts_with('0')
        && lower.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    let is_float_syntax = if radix == 16 {
        clean.contains(['.', 'p'])
    } else {
        radix == 10 && clean.contains(['.', 'e'])
    };
    if !is_float_syntax {
        if clean.is_empty() {
            return Err(illegal());
        }
        return match u128::from_str_radix(&clean, radix) {
            Ok(u) => {
                let signed = if neg { -(u as i128) } else { u as i128 };
                match i64::try_from(signed) {
                    Ok(i) => Ok(Constant::Int(i)),
                    Err(_) if u <= u128::from(u64::MAX) && !neg => {
                        Ok(Constant::Overflow(text.into()))
                    }
                    Err(_) => Err(format!("integer overflow: {text:?}")),
                }
            }
            Err(_)
                if clean.bytes().all(|b| b.is_ascii_alphanumeric())
                    && clean.chars().all(|c| c.is_digit(radix)) =>
            {
                Err(format!("integer overflow: {text:?}"))
            }
            Err(_) => Err(illegal()),
        };
    }
    let value = if radix == 16 {
        hex_float(&clean).ok_or_else(illegal)?
    } else {
        clean.parse::<f64>().map_err(|_| illegal())?
    };
    if value.is_infinite() {
        return Err(illegal());
    }
    Ok(Constant::Float(if neg { -value } else { value }))
}

/// A hex float's digits (after `0x`) with a `p` exponent.
fn hex_float(s: &str) -> Option<f64> {
    let (mantissa, exp) = s.split_once('p')?;
    let exp: i32 = exp.parse().ok()?;
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut v = 0f64;
    for c in int.chars() {
        v = v * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    Some(v * 2f64.powi(exp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Tree, ParseError> {
        parse(s, &|f| f == "print" || f == "len")
    }

    #[test]
    fn numbers_read_as_go() {
        assert_eq!(number("0x1F"), Ok(Constant::Int(31)));
        assert_eq!(number("0o17"), Ok(Constant::Int(15)));
        assert_eq!(number("017"), Ok(Constant::Int(15)));
        assert_eq!(number("0b101"), Ok(Constant::Int(5)));
        assert_eq!(number("1_000"), Ok(Constant::Int(1000)));
        assert_eq!(number("-3"), Ok(Constant::Int(-3)));
        assert_eq!(number("1.0"), Ok(Constant::Float(1.0)));
        assert_eq!(number("1e3"), Ok(Constant::Float(1000.0)));
        assert_eq!(number("0x1p4"), Ok(Constant::Float(16.0)));
        assert!(matches!(
            number("18446744073709551615"),
            Ok(Constant::Overflow(_))
        ));
        assert!(number("99999999999999999999").is_err());
        assert!(number("1i").is_err());
        assert!(number("0x").is_err());
    }

    #[test]
    fn parses_and_checks() {
        assert!(p("{{ if .a }}x{{ else if .b }}y{{ else }}z{{ end }}").is_ok());
        assert!(p("{{ range $i, $e := . }}{{ $i }}{{ break }}{{ end }}").is_ok());
        assert!(p("{{ $x }}").is_err());
        assert!(p("{{ nope }}").is_err());
        assert!(p("{{ break }}").is_err());
        assert!(p("{{ define \"a\" }}x{{ end }}{{ template \"a\" . }}").is_ok());
        assert!(p("{{ if 1 }}").is_err());
        assert!(p("{{ (print 1).x }}").is_ok());
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(65), ")".repeat(65));
        assert!(p(&deep).is_err());
    }
}
