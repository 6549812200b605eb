//! `filterPEM`, `filterCertChain` and `certSANs`, with Go's `encoding/pem` rules for reading
//! and writing blocks (a block that does not parse is skipped, headers are kept, bodies are
//! written 64 characters to a line).

use std::collections::BTreeMap;

use super::super::gotmpl::{FuncError, List, Value};
use base64::Engine as _;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::failed;
use crate::template::go::{exactly, str_param};

/// A PEM block as Go's `pem.Block`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Block {
    /// The word(s) after `BEGIN`.
    pub(super) kind: String,
    /// `Key: value` lines before the body.
    pub(super) headers: BTreeMap<String, String>,
    /// The decoded body.
    pub(super) bytes: Vec<u8>,
}

/// Go's `base64.StdEncoding` for PEM bodies: padding required, stray bits allowed.
const BODY: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireCanonical),
);

/// One line without its `\n` and trailing spaces, tabs and `\r`, and what follows it.
fn line(data: &str) -> (&str, &str) {
    let (l, rest) = match data.find('\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, ""),
    };
    (l.trim_end_matches([' ', '\t', '\r']), rest)
}

/// Go's `pem.Decode`: the first block that parses, and the text after it; `None` when no
/// block parses.
pub(super) fn decode(data: &str) -> Option<(Block, &str)> {
    let mut rest = data;
    // where the next "\n-----END " is, found once for all the blocks that fail before it (a
    // search per failed block would make hostile input quadratic)
    let mut next_end: Option<usize> = None;
    loop {
        if let Some(after) = rest.strip_prefix("-----BEGIN ") {
            rest = after;
        } else {
            let at = rest.find("\n-----BEGIN ")?;
            rest = &rest[at + "\n-----BEGIN ".len()..];
        }
        let (type_line, after_type) = line(rest);
        rest = after_type;
        let Some(kind) = type_line.strip_suffix("-----") else {
            continue;
        };
        let mut headers = BTreeMap::new();
        let mut complete = true;
        loop {
            if rest.is_empty() {
                complete = false;
                break;
            }
            let (l, next) = line(rest);
            let Some((key, value)) = l.split_once(':') else {
                break;
            };
            headers.insert(key.trim().to_string(), value.trim().to_string());
            rest = next;
        }
        if !complete {
            return None;
        }
        let (end, trailer_at) = if headers.is_empty() && rest.starts_with("-----END ") {
            (0, "-----END ".len())
        } else {
            let offset = data.len() - rest.len();
            if next_end.is_none_or(|at| at < offset) {
                // no END anywhere after here: no later block can parse either
                next_end = Some(offset + rest.find("\n-----END ")?);
            }
            let i = next_end.unwrap_or_default() - offset;
            (i, i + "\n-----END ".len())
        };
        let trailer = &rest[trailer_at..];
        let want = format!("{kind}-----");
        let Some(after_end) = trailer.strip_prefix(want.as_str()) else {
            continue;
        };
        if !line(after_end).0.is_empty() {
            continue;
        }
        let body: String = rest[..end]
            .chars()
            .filter(|c| !matches!(c, ' ' | '\t' | '\r' | '\n'))
            .collect();
        let Ok(bytes) = BODY.decode(body) else {
            continue;
        };
        let block = Block {
            kind: kind.to_string(),
            headers,
            bytes,
        };
        return Some((block, line(after_end).1));
    }
}

/// Every block that parses, in order, and the text left after the last one.
pub(super) fn decode_all(mut data: &str) -> (Vec<Block>, &str) {
    let mut blocks = Vec::new();
    while let Some((block, rest)) = decode(data) {
        blocks.push(block);
        data = rest;
    }
    (blocks, data)
}

/// Go's `pem.Encode`.
pub(super) fn encode(block: &Block) -> String {
    let mut out = format!("-----BEGIN {}-----\n", block.kind);
    if !block.headers.is_empty() {
        // Proc-Type first, then the others sorted
        let proc_type = block.headers.get_key_value("Proc-Type");
        let others = block.headers.iter().filter(|(k, _)| *k != "Proc-Type");
        for (k, v) in proc_type.into_iter().chain(others) {
            out.push_str(&format!("{k}: {v}\n"));
        }
        out.push('\n');
    }
    let body = base64::engine::general_purpose::STANDARD.encode(&block.bytes);
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {}-----\n", block.kind));
    out
}

/// A block of `kind` with `der` as its body, as Go's `pem.EncodeToMemory`.
pub(super) fn encode_der(kind: &str, der: &[u8]) -> String {
    encode(&Block {
        kind: kind.to_string(),
        headers: BTreeMap::new(),
        bytes: der.to_vec(),
    })
}

/// The input from its first `-----BEGIN` on (upstream's `trimJunk`).
fn trim_junk(input: &str) -> &str {
    input.find("-----BEGIN").map_or(input, |at| &input[at..])
}

/// `filterPEM TYPE input`: the blocks whose type is TYPE (ignoring case), re-encoded, in order.
/// Input with text but no block at all fails; input with only other blocks gives "".
pub(super) fn filter_pem(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "filterPEM", 2)?;
    let kind = str_param(&args[0])?;
    let input = str_param(&args[1])?;
    let (blocks, rest) = decode_all(trim_junk(&input));
    let out: String = blocks
        .iter()
        .filter(|b| go_equal_fold(&b.kind, &kind))
        .map(encode)
        .collect();
    if out.is_empty() && !rest.is_empty() && blocks.is_empty() {
        // upstream's own text; Go's "error calling filterPEM:" names the function
        return Err(FuncError::Generic("error filtering pem: found junk".into()));
    }
    Ok(Value::String(out))
}

/// Go's `strings.EqualFold` (simple Unicode case folding).
fn go_equal_fold(a: &str, b: &str) -> bool {
    a.chars().count() == b.chars().count()
        && a.chars().zip(b.chars()).all(|(x, y)| {
            x == y || x.to_lowercase().eq(y.to_lowercase()) || x.to_uppercase().eq(y.to_uppercase())
        })
}

/// What chain ordering needs of a certificate.
pub(super) struct Cert {
    /// The DER encoding.
    pub(super) der: Vec<u8>,
    /// The authority key identifier's key id (empty when absent, as Go's nil).
    akid: Vec<u8>,
    /// The subject key identifier (empty when absent).
    skid: Vec<u8>,
}

impl Cert {
    /// Parses a DER certificate; `function` names the caller in the error.
    pub(super) fn parse(der: &[u8], function: &str) -> Result<Self, FuncError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|_| failed(function, go_malformed(der)))?;
        let mut akid = Vec::new();
        let mut skid = Vec::new();
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    if let Some(id) = &a.key_identifier {
                        akid = id.0.to_vec();
                    }
                }
                ParsedExtension::SubjectKeyIdentifier(id) => skid = id.0.to_vec(),
                _ => {}
            }
        }
        Ok(Self {
            der: der.to_vec(),
            akid,
            skid,
        })
    }

    /// Upstream's `isRootCertificate`: no authority key id, or the subject's own.
    fn is_root(&self) -> bool {
        self.akid.is_empty() || self.akid == self.skid
    }
}

/// Every PEM block of `input` as a certificate (any other block fails).
pub(super) fn certs_of(input: &str, function: &str) -> Result<Vec<Cert>, FuncError> {
    decode_all(input)
        .0
        .iter()
        .map(|b| Cert::parse(&b.bytes, function))
        .collect()
}

/// Upstream's chain ordering: leaf, intermediates, root, linked by authority and subject key
/// ids. Fails for several leaves (disjunct certificates), no leaf, or a cycle. No signature or
/// trust is checked.
pub(super) fn order_chain(certs: Vec<Cert>, function: &str) -> Result<Vec<Cert>, FuncError> {
    let n = certs.len();
    let mut parent: Vec<Option<usize>> = vec![None; n];
    let mut is_parent = vec![false; n];
    for i in 0..n {
        if let Some(j) = (0..n).find(|&j| j != i && certs[i].akid == certs[j].skid) {
            is_parent[j] = true;
            parent[i] = Some(j);
        }
    }
    let mut leaves = (0..n).filter(|&i| !is_parent[i]);
    let Some(leaf) = leaves.next() else {
        return Err(failed(function, "no leaf certificate found"));
    };
    if leaves.next().is_some() {
        return Err(failed(
            function,
            "found multiple leaf or disjunct certificates",
        ));
    }
    let mut order = Vec::new();
    let mut at = Some(leaf);
    while let Some(i) = at {
        if order.len() >= n {
            return Err(failed(function, "constructing chain resulted in cycle"));
        }
        order.push(i);
        at = parent[i];
    }
    let mut slots: Vec<Option<Cert>> = certs.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

/// `filterCertChain TYPE input`: from a PEM certificate chain, the `leaf`, the
/// `intermediate` certificates, or the `root`, as PEM; "" when the chain has none (or for
/// another TYPE).
pub(super) fn filter_cert_chain(args: &[Value]) -> Result<Value, FuncError> {
    const F: &str = "filterCertChain";
    exactly(args, F, 2)?;
    let kind = str_param(&args[0])?;
    let input = str_param(&args[1])?;
    let chain = order_chain(certs_of(&input, F)?, F)?;
    let pem = |c: &Cert| encode_der("CERTIFICATE", &c.der);
    let out = match kind.as_str() {
        "leaf" => chain
            .first()
            .filter(|c| !c.akid.is_empty() && c.akid != c.skid)
            .map(pem)
            .unwrap_or_default(),
        "intermediate" => chain
            .iter()
            .skip(1)
            .take_while(|c| !c.is_root())
            .map(pem)
            .collect(),
        "root" => chain
            .last()
            .filter(|c| c.is_root())
            .map(pem)
            .unwrap_or_default(),
        _ => String::new(),
    };
    Ok(Value::String(out))
}

/// One DER element with tag `tag` at the start of `input`: its contents and the rest (the
/// checks of Go's `cryptobyte`: definite, minimal lengths of at most four bytes).
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first & 0x80 == 0 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n || rest[0] == 0 {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        rest = &rest[n..];
        if len < 128 {
            return None;
        }
        len
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// Which of Go's x509 messages a DER certificate that does not parse gets: Go checks the outer
/// SEQUENCE, then the to-be-signed SEQUENCE inside it, before anything else.
pub(super) fn go_malformed(der: &[u8]) -> &'static str {
    const SEQUENCE: u8 = 0x30;
    let Some((outer, _)) = der_element(der, SEQUENCE) else {
        return "x509: malformed certificate";
    };
    if der_element(outer, SEQUENCE).is_none() {
        return "x509: malformed tbs certificate";
    }
    "x509: malformed certificate"
}

/// `certSANs input`: the subject alternative names of the first PEM block's certificate, as a
/// list: DNS names, then IP addresses, then e-mail addresses, then URIs.
pub(super) fn cert_sans(args: &[Value]) -> Result<Value, FuncError> {
    const F: &str = "certSANs";
    exactly(args, F, 1)?;
    let input = str_param(&args[0])?;
    let (block, _) =
        decode(trim_junk(&input)).ok_or_else(|| upstream("failed to decode PEM block"))?;
    let (_, cert) = X509Certificate::from_der(&block.bytes).map_err(|_| {
        upstream(&format!(
            "failed to parse certificate: {}",
            go_malformed(&block.bytes)
        ))
    })?;
    let (mut dns, mut ips, mut emails, mut uris) = (vec![], vec![], vec![], vec![]);
    for ext in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(d) => dns.push(d.to_string()),
                    GeneralName::RFC822Name(e) => emails.push(e.to_string()),
                    GeneralName::URI(u) => uris.push(u.to_string()),
                    GeneralName::IPAddress(ip) => ips.push(go_ip(ip).ok_or_else(|| {
                        upstream("failed to parse certificate: x509: cannot parse IP address")
                    })?),
                    _ => {}
                }
            }
        }
    }
    let all = dns.into_iter().chain(ips).chain(emails).chain(uris);
    Ok(Value::Array(List::strings(
        all.map(Value::String).collect(),
    )))
}

/// An error with upstream's own text (Go's "error calling certSANs:" names the function).
fn upstream(what: &str) -> FuncError {
    FuncError::Generic(what.to_string())
}

/// An IP address as Go's `net.IP.String` prints it (an IPv4-mapped IPv6 address as IPv4).
fn go_ip(raw: &[u8]) -> Option<String> {
    match raw.len() {
        4 => Some(std::net::Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]).to_string()),
        16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(raw);
            let v6 = std::net::Ipv6Addr::from(b);
            Some(match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => v6.to_string(),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_go() {
        let pem = "junk\n-----BEGIN X-----\nAQID\n-----END X-----\ntail";
        let (b, rest) = decode(pem).unwrap();
        assert_eq!(
            (b.kind.as_str(), b.bytes.as_slice(), rest),
            ("X", &[1u8, 2, 3][..], "tail")
        );
        // a bad body is skipped, the next block is found
        let two =
            "-----BEGIN A-----\n!!\n-----END A-----\n-----BEGIN B-----\nAQID\n-----END B-----\n";
        assert_eq!(decode(two).unwrap().0.kind, "B");
        // mismatched END
        assert!(decode("-----BEGIN A-----\nAQID\n-----END B-----\n").is_none());
        // headers survive a round trip
        let h = "-----BEGIN K-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: x\n\nAQID\n-----END K-----\n";
        let (b, _) = decode(h).unwrap();
        assert_eq!(encode(&b), h);
        assert_eq!(encode_der("E", &[]), "-----BEGIN E-----\n-----END E-----\n");
        assert!(go_equal_fold("Certificate", "CERTIFICATE"));
        assert_eq!(
            go_ip(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 1, 2, 3, 4]).unwrap(),
            "1.2.3.4"
        );
    }
}
