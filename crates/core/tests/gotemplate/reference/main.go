// Reference renderer for the differential template tests: Go's text/template with sprig, set up
// the way upstream sealed-secrets and external-secrets set it up.
//
// Reads one JSON case per line on stdin: {"id": N, "map": "sealed"|"eso", "template": "...",
// "data": {"key": "value", ...}, "left": "", "right": ""} (delimiters, empty for the
// defaults) and writes one JSON result per line on stdout:
// {"id": N, "ok": true, "out": "..."} or {"id": N, "ok": false, "phase": "parse"|"exec",
// "err": "..."}. The dot is a map[string]string, as both controllers pass it.
//
// Built in GOPATH mode from Debian's packages (see ../mod.rs in the Rust test).
package main

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"sigs.k8s.io/yaml"
)

type input struct {
	ID       int               `json:"id"`
	Map      string            `json:"map"`
	Template string            `json:"template"`
	Data     map[string]string `json:"data"`
	Left     string            `json:"left"`
	Right    string            `json:"right"`
}

type output struct {
	ID    int    `json:"id"`
	OK    bool   `json:"ok"`
	Out   string `json:"out,omitempty"`
	Phase string `json:"phase,omitempty"`
	Err   string `json:"err,omitempty"`
}

// sealed-secrets: sprig without the functions that reach the environment or the network.
func sealedFuncs() template.FuncMap {
	m := sprig.TxtFuncMap()
	delete(m, "env")
	delete(m, "expandenv")
	delete(m, "getHostByName")
	return m
}

// external-secrets: the same sprig subset plus its own YAML functions, and the two of its PEM
// functions that need only Go's standard library, written here from upstream's documented
// behaviour (pkcs12* and jwk* need go-pkcs12 and jwx and are compared against upstream's
// documented examples instead).
func esoFuncs() template.FuncMap {
	m := sealedFuncs()
	m["toYaml"] = func(v interface{}) string {
		data, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(data), "\n")
	}
	m["fromYaml"] = func(s string) map[string]interface{} {
		out := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &out); err != nil {
			out["Error"] = err.Error()
		}
		return out
	}
	m["filterPEM"] = refFilterPEM
	m["certSANs"] = refCertSANs
	return m
}

// refFilterPEM: the blocks of type `kind` (case ignored) in `text`, each re-encoded, one after
// another; text before the first "-----BEGIN" is dropped; text with no block of that type and
// something left over that is not PEM is an error.
func refFilterPEM(kind, text string) (string, error) {
	if at := strings.Index(text, "-----BEGIN"); at >= 0 {
		text = text[at:]
	}
	var out bytes.Buffer
	left := []byte(text)
	for {
		block, after := pem.Decode(left)
		left = after
		if block == nil {
			break
		}
		if strings.EqualFold(block.Type, kind) {
			if err := pem.Encode(&out, block); err != nil {
				return "", err
			}
		}
	}
	if out.Len() == 0 && len(left) > 0 {
		return "", errors.New("error filtering pem: found junk")
	}
	return out.String(), nil
}

// refCertSANs: the first certificate's DNS names, IP addresses, e-mail addresses and URIs.
func refCertSANs(text string) ([]string, error) {
	if at := strings.Index(text, "-----BEGIN"); at >= 0 {
		text = text[at:]
	}
	block, _ := pem.Decode([]byte(text))
	if block == nil {
		return nil, errors.New("failed to decode PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("failed to parse certificate: %w", err)
	}
	names := append([]string{}, cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		names = append(names, ip.String())
	}
	names = append(names, cert.EmailAddresses...)
	for _, u := range cert.URIs {
		names = append(names, u.String())
	}
	return names, nil
}

func render(c input) (o output) {
	o.ID = c.ID
	defer func() {
		if r := recover(); r != nil {
			o = output{ID: c.ID, OK: false, Phase: "panic", Err: fmt.Sprint(r)}
		}
	}()
	t := template.New("out").Delims(c.Left, c.Right)
	if c.Map == "eso" {
		t = t.Option("missingkey=error").Funcs(esoFuncs())
	} else {
		t = t.Funcs(sealedFuncs())
	}
	t, err := t.Parse(c.Template)
	if err != nil {
		return output{ID: c.ID, Phase: "parse", Err: err.Error()}
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, c.Data); err != nil {
		return output{ID: c.ID, Phase: "exec", Err: err.Error()}
	}
	return output{ID: c.ID, OK: true, Out: buf.String()}
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<26)
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for in.Scan() {
		var c input
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			fmt.Fprintln(os.Stderr, "bad case:", err)
			os.Exit(2)
		}
		_ = enc.Encode(render(c))
		out.Flush()
	}
}
