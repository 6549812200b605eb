//! Kubernetes' IP and CIDR libraries: `ip(<string>)`, `isIP`, `ip.isCanonical`, `family`,
//! `isUnspecified`, `isLoopback`, `isLinkLocalMulticast`, `isLinkLocalUnicast`,
//! `isGlobalUnicast`, `string(ip)`; `cidr(<string>)`, `isCIDR`, `containsIP`, `containsCIDR`,
//! `ip()`, `masked`, `prefixLength`, `string(cidr)`.
//!
//! As Go's `netip`: IPv4 octets with leading zeros, zones and IPv4-mapped IPv6 addresses are
//! refused.

use std::net::{IpAddr, Ipv6Addr};

use cel::common::types::{CelBool, CelInt, CelString};
use cel::{DeclarationError, Env, ExecutionError};

use super::env::fail;

/// An IP address (`net.IP`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Ip(IpAddr);

opaque_val!(Ip, "net.IP");

/// A network: an address and a prefix length (`net.CIDR`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Cidr {
    addr: IpAddr,
    bits: u8,
}

opaque_val!(Cidr, "net.CIDR");

/// Declares the IP and CIDR functions on `env`.
pub(super) fn extension(env: &mut Env) -> Result<(), DeclarationError> {
    cel::add_overload!(env, fn ip: (CelString) -> Result<Ip>, id = "string_to_ip")?;
    cel::add_overload!(env, fn is_ip: (CelString) -> CelBool, name = "isIP", id = "is_ip")?;
    cel::add_overload!(env, fn is_canonical: (CelString) -> Result<CelBool>,
        name = "ip.isCanonical", id = "ip_is_canonical")?;
    cel::add_member_overload!(env, fn family: (Ip) -> CelInt, id = "ip_family")?;
    cel::add_member_overload!(env, fn is_unspecified: (Ip) -> CelBool, id = "ip_is_unspecified")?;
    cel::add_member_overload!(env, fn is_loopback: (Ip) -> CelBool, id = "ip_is_loopback")?;
    cel::add_member_overload!(env, fn is_link_local_multicast: (Ip) -> CelBool,
        id = "ip_is_link_local_multicast")?;
    cel::add_member_overload!(env, fn is_link_local_unicast: (Ip) -> CelBool,
        id = "ip_is_link_local_unicast")?;
    cel::add_member_overload!(env, fn is_global_unicast: (Ip) -> CelBool,
        id = "ip_is_global_unicast")?;
    cel::add_overload!(env, fn ip_to_string: (Ip) -> CelString, name = "string", id = "ip_to_string")?;

    cel::add_overload!(env, fn cidr: (CelString) -> Result<Cidr>, id = "string_to_cidr")?;
    cel::add_overload!(env, fn is_cidr: (CelString) -> CelBool, name = "isCIDR", id = "is_cidr")?;
    cel::add_member_overload!(env, fn contains_ip: (Cidr, Ip) -> CelBool,
        name = "containsIP", id = "cidr_contains_ip_ip")?;
    cel::add_member_overload!(env, fn contains_ip_string: (Cidr, CelString) -> Result<CelBool>,
        name = "containsIP", id = "cidr_contains_ip_string")?;
    cel::add_member_overload!(env, fn contains_cidr: (Cidr, Cidr) -> CelBool,
        name = "containsCIDR", id = "cidr_contains_cidr")?;
    cel::add_member_overload!(env, fn contains_cidr_string: (Cidr, CelString) -> Result<CelBool>,
        name = "containsCIDR", id = "cidr_contains_cidr_string")?;
    cel::add_member_overload!(env, fn cidr_ip: (Cidr) -> Ip, name = "ip", id = "cidr_ip")?;
    cel::add_member_overload!(env, fn masked: (Cidr) -> Cidr, id = "cidr_masked")?;
    cel::add_member_overload!(env, fn prefix_length: (Cidr) -> CelInt, id = "cidr_prefix_length")?;
    cel::add_overload!(env, fn cidr_to_string: (Cidr) -> CelString, name = "string",
        id = "cidr_to_string")?;
    Ok(())
}

/// Whether `a` is an IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`).
fn is_4in6(a: &Ipv6Addr) -> bool {
    a.to_ipv4_mapped().is_some()
}

/// Parses an address as the real server does; the error is its message.
fn parse_ip(raw: &str) -> Result<IpAddr, String> {
    match raw.parse::<IpAddr>() {
        Ok(IpAddr::V6(a)) if is_4in6(&a) => {
            Err(format!("IPv4-mapped IPv6 address {raw:?} is not allowed"))
        }
        Ok(a) => Ok(a),
        Err(_) => match raw.split_once('%') {
            Some((addr, zone)) if !zone.is_empty() && addr.parse::<Ipv6Addr>().is_ok() => {
                Err(format!("IP address {raw:?} with zone value is not allowed"))
            }
            _ => Err(format!(
                "IP Address {raw:?} parse error during conversion from string: ParseAddr({raw:?}): unable to parse IP"
            )),
        },
    }
}

/// Parses `addr/bits` as the real server does; the error is its message.
fn parse_cidr(raw: &str) -> Result<Cidr, String> {
    let prefix_error = |why: &str| {
        format!(
            "network address parse error during conversion from string: netip.ParsePrefix({raw:?}): {why}"
        )
    };
    let Some((addr, bits)) = raw.rsplit_once('/') else {
        return Err(prefix_error("no '/'"));
    };
    let addr: IpAddr = match addr.parse() {
        Ok(a) => a,
        Err(_) if addr.contains('%') => {
            return Err(prefix_error("IPv6 zones cannot be present in a prefix"));
        }
        Err(_) => {
            return Err(prefix_error(&format!(
                "ParseAddr({addr:?}): unable to parse IP"
            )));
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = match bits.parse::<u8>() {
        Ok(b)
            if b <= max
                && (bits == "0" || !bits.starts_with('0'))
                && bits.bytes().all(|c| c.is_ascii_digit()) =>
        {
            b
        }
        _ => return Err(prefix_error(&format!("bad bits after slash: {bits:?}"))),
    };
    if let IpAddr::V6(a) = addr
        && is_4in6(&a)
    {
        return Err(format!("IPv4-mapped IPv6 address {raw:?} is not allowed"));
    }
    Ok(Cidr { addr, bits })
}

/// `addr` with all but its first `bits` bits cleared.
fn mask(addr: IpAddr, bits: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

fn ip(s: &CelString<'_>) -> Result<Ip, ExecutionError> {
    parse_ip(s.inner()).map(Ip).map_err(|e| fail("ip", e))
}

fn is_ip(s: &CelString<'_>) -> CelBool {
    CelBool::from(parse_ip(s.inner()).is_ok())
}

fn is_canonical(s: &CelString<'_>) -> Result<CelBool, ExecutionError> {
    let addr = parse_ip(s.inner()).map_err(|e| fail("ip.isCanonical", e))?;
    Ok(CelBool::from(addr.to_string() == s.inner()))
}

fn family(ip: &Ip) -> CelInt {
    CelInt::from(if ip.0.is_ipv4() { 4 } else { 6 })
}

fn is_unspecified(ip: &Ip) -> CelBool {
    CelBool::from(ip.0.is_unspecified())
}

fn is_loopback(ip: &Ip) -> CelBool {
    CelBool::from(ip.0.is_loopback())
}

fn is_link_local_multicast(ip: &Ip) -> CelBool {
    CelBool::from(match ip.0 {
        IpAddr::V4(a) => a.octets()[..3] == [224, 0, 0],
        IpAddr::V6(a) => a.segments()[0] == 0xff02,
    })
}

fn link_local_unicast(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
    }
}

fn is_link_local_unicast(ip: &Ip) -> CelBool {
    CelBool::from(link_local_unicast(ip.0))
}

fn is_global_unicast(ip: &Ip) -> CelBool {
    let a = ip.0;
    let broadcast = matches!(a, IpAddr::V4(v4) if v4.is_broadcast());
    CelBool::from(
        !a.is_unspecified()
            && !broadcast
            && !a.is_loopback()
            && !a.is_multicast()
            && !link_local_unicast(a),
    )
}

fn ip_to_string(ip: &Ip) -> CelString<'static> {
    ip.0.to_string().into()
}

fn cidr(s: &CelString<'_>) -> Result<Cidr, ExecutionError> {
    parse_cidr(s.inner()).map_err(|e| {
        fail(
            "cidr",
            format!("network address parse error during conversion from string: {e}"),
        )
    })
}

fn is_cidr(s: &CelString<'_>) -> CelBool {
    CelBool::from(parse_cidr(s.inner()).is_ok())
}

fn contains_ip(c: &Cidr, ip: &Ip) -> CelBool {
    CelBool::from(c.addr.is_ipv4() == ip.0.is_ipv4() && mask(ip.0, c.bits) == mask(c.addr, c.bits))
}

fn contains_ip_string(c: &Cidr, s: &CelString<'_>) -> Result<CelBool, ExecutionError> {
    Ok(contains_ip(c, &ip(s)?))
}

fn contains_cidr(c: &Cidr, other: &Cidr) -> CelBool {
    CelBool::from(
        c.addr.is_ipv4() == other.addr.is_ipv4()
            && c.bits <= other.bits
            && mask(other.addr, c.bits) == mask(c.addr, c.bits),
    )
}

fn contains_cidr_string(c: &Cidr, s: &CelString<'_>) -> Result<CelBool, ExecutionError> {
    Ok(contains_cidr(c, &cidr(s)?))
}

fn cidr_ip(c: &Cidr) -> Ip {
    Ip(c.addr)
}

fn masked(c: &Cidr) -> Cidr {
    Cidr {
        addr: mask(c.addr, c.bits),
        bits: c.bits,
    }
}

fn prefix_length(c: &Cidr) -> CelInt {
    CelInt::from(i64::from(c.bits))
}

fn cidr_to_string(c: &Cidr) -> CelString<'static> {
    format!("{}/{}", c.addr, c.bits).into()
}

#[cfg(test)]
mod tests {
    use super::super::env::{eval, no, yes};
    use cel::Value;

    #[test]
    fn is_ip_and_errors() {
        yes("isIP('127.0.0.1')");
        yes("isIP('::1')");
        no("isIP('127.0.0.256')");
        no("isIP(':::1')");
        no("isIP('01.2.3.4')");
        no("isIP('::ffff:1.2.3.4')");
        no("isIP('fe80::1%eth0')");
        assert_eq!(
            eval("ip('::ffff:1.2.3.4')"),
            Err("IPv4-mapped IPv6 address \"::ffff:1.2.3.4\" is not allowed".to_string())
        );
        assert_eq!(
            eval("ip('fe80::1%eth0')"),
            Err("IP address \"fe80::1%eth0\" with zone value is not allowed".to_string())
        );
        let err = eval("ip('x')").unwrap_err();
        assert!(
            err.starts_with("IP Address \"x\" parse error during conversion from string"),
            "{err}"
        );
    }

    #[test]
    fn canonical_and_string() {
        yes("ip.isCanonical('127.0.0.1')");
        yes("ip.isCanonical('2001:db8::abcd')");
        no("ip.isCanonical('2001:DB8::ABCD')");
        no("ip.isCanonical('2001:db8::0:0:0:abcd')");
        assert!(eval("ip.isCanonical('nope')").is_err());
        assert_eq!(
            eval("string(ip('2001:DB8::0:0:0:abcd'))"),
            Ok(Value::from("2001:db8::abcd"))
        );
        yes("ip('::1') == ip('0:0::1')");
        no("ip('::1') == ip('::2')");
    }

    #[test]
    fn classes() {
        assert_eq!(eval("ip('127.0.0.1').family()"), Ok(Value::Int(4)));
        assert_eq!(eval("ip('::1').family()"), Ok(Value::Int(6)));
        yes("ip('0.0.0.0').isUnspecified()");
        yes("ip('::').isUnspecified()");
        no("ip('::1').isUnspecified()");
        yes("ip('127.0.0.1').isLoopback()");
        yes("ip('::1').isLoopback()");
        no("ip('192.168.0.1').isLoopback()");
        yes("ip('224.0.0.1').isLinkLocalMulticast()");
        no("ip('224.0.1.1').isLinkLocalMulticast()");
        yes("ip('ff02::1').isLinkLocalMulticast()");
        no("ip('fd00::1').isLinkLocalMulticast()");
        yes("ip('169.254.169.254').isLinkLocalUnicast()");
        yes("ip('fe80::1').isLinkLocalUnicast()");
        no("ip('fd80::1').isLinkLocalUnicast()");
        yes("ip('192.168.0.1').isGlobalUnicast()");
        no("ip('255.255.255.255').isGlobalUnicast()");
        yes("ip('2001:db8::abcd').isGlobalUnicast()");
        no("ip('ff00::1').isGlobalUnicast()");
    }

    #[test]
    fn cidrs() {
        yes("isCIDR('192.168.0.0/16')");
        yes("isCIDR('::1/128')");
        no("isCIDR('192.168.0.0/33')");
        no("isCIDR('::1/129')");
        no("isCIDR('192.168.0.0')");
        no("isCIDR('192.168.0.0/016')");
        no("isCIDR('::ffff:1.2.3.4/120')");
        let err = eval("cidr('x')").unwrap_err();
        assert!(
            err.starts_with("network address parse error during conversion from string: "),
            "{err}"
        );
        yes("cidr('192.168.0.0/24').containsIP(ip('192.168.0.1'))");
        no("cidr('192.168.0.0/24').containsIP(ip('192.168.1.1'))");
        yes("cidr('192.168.0.0/24').containsIP('192.168.0.1')");
        no("cidr('192.168.0.0/24').containsIP('::1')");
        assert!(eval("cidr('192.168.0.0/24').containsIP('nope')").is_err());
        yes("cidr('192.168.0.0/16').containsCIDR(cidr('192.168.10.0/24'))");
        no("cidr('192.168.1.0/24').containsCIDR(cidr('192.168.2.0/24'))");
        yes("cidr('192.168.0.0/16').containsCIDR('192.168.10.0/24')");
        no("cidr('192.168.0.0/24').containsCIDR('192.168.0.0/16')");
        yes("cidr('192.168.0.1/24').ip() == ip('192.168.0.1')");
        assert_eq!(eval("cidr('::1/128').ip().family()"), Ok(Value::Int(6)));
        yes("cidr('192.168.0.1/24').masked() == cidr('192.168.0.0/24')");
        no("cidr('192.168.0.1/24') == cidr('192.168.0.1/24').masked()");
        assert_eq!(
            eval("cidr('192.168.0.0/16').prefixLength()"),
            Ok(Value::Int(16))
        );
        assert_eq!(
            eval("string(cidr('2001:DB8::/32'))"),
            Ok(Value::from("2001:db8::/32"))
        );
    }
}
