// Package protodoc reads docs/PROTOCOL.md for the tests that hold the code to it: the
// worked frames (annotated hex dumps with a one-line copy) and the sections between
// HTML-comment markers. It is test support only and imports nothing but the standard
// library, so that the in-package tests of protocol and internal/wire, which
// internal/testkit itself imports, can use it.
package protodoc

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Text returns docs/PROTOCOL.md, found in the module root above the working directory
// (a package's tests run in its folder). A missing document fails the test.
func Text(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("the normative document must exist: no go.mod above the working directory")
		}
		dir = up
	}
	doc, err := os.ReadFile(filepath.Join(dir, "docs", "PROTOCOL.md"))
	if err != nil {
		t.Fatalf("the normative document must exist: %v", err)
	}
	return string(doc)
}

// Frame is one worked frame of the document.
type Frame struct {
	Name    string // the NAME of its <!-- marker: NAME --> comment
	Dump    []byte // the bytes of its annotated dump (DumpBytes)
	OneLine string // its "One line:" copy, spaced hex, trimmed
}

var hexByteRE = regexp.MustCompile(`^[0-9a-f]{2}$`)

// Frames returns, in the document's order, the worked frames of doc whose marker is
// <!-- marker: NAME --> ("frame" for the client protocol, "control-frame" for the
// control port): the marker, a ```text block with the annotated dump, and a line
// "One line: `0a 1b ...`".
func Frames(doc, marker string) []Frame {
	re := regexp.MustCompile("(?s)<!-- " + regexp.QuoteMeta(marker) + ": ([a-z_]+) -->\\s*```text\\n(.*?)```\\s*One line: `([0-9a-f ]+)`")
	var out []Frame
	for _, m := range re.FindAllStringSubmatch(doc, -1) {
		out = append(out, Frame{Name: m[1], Dump: DumpBytes(m[2]), OneLine: strings.TrimSpace(m[3])})
	}
	return out
}

// DumpBytes collects the hex bytes that start each line of an annotated dump; the
// first token that is not a hex byte ends the line's bytes.
func DumpBytes(dump string) []byte {
	var out []byte
	for _, line := range strings.Split(dump, "\n") {
		for _, tok := range strings.Fields(line) {
			if !hexByteRE.MatchString(tok) {
				break
			}
			b, _ := hex.DecodeString(tok) // two hex digits: cannot fail
			out = append(out, b...)
		}
	}
	return out
}

// Spaced renders b as the document writes bytes: two lower-case hex digits a byte,
// separated by single spaces ("0a 1b").
func Spaced(b []byte) string {
	var sb strings.Builder
	for i, c := range b {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(hex.EncodeToString([]byte{c}))
	}
	return sb.String()
}

// Hex decodes bytes written the document's way ("0a 1b"), failing the test if s is
// not that.
func Hex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("PROTOCOL.md bytes %q: %v", s, err)
	}
	return b
}

// Between returns the text of doc between the markers begin and end, failing the test
// unless both are there in that order.
func Between(t testing.TB, doc, begin, end string) string {
	t.Helper()
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("PROTOCOL.md lacks the %s ... %s markers", begin, end)
	}
	return doc[i:j]
}

// CheckFrames holds the worked frames of doc with marker (Frames) to want, the frames
// the Go encoder produces keyed by marker name: every worked frame must have a Go
// counterpart whose bytes its annotated dump and its one-line copy both spell, and
// every frame of want must be in the document. Each mismatch is a test error. It
// returns the names of the frames found in both, in the document's order.
func CheckFrames(t testing.TB, doc, marker string, want map[string][]byte) (found []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, f := range Frames(doc, marker) {
		frame, ok := want[f.Name]
		if !ok {
			t.Errorf("PROTOCOL.md %s %q has no Go counterpart", marker, f.Name)
			continue
		}
		seen[f.Name] = true
		found = append(found, f.Name)
		if !bytes.Equal(f.Dump, frame) {
			t.Errorf("PROTOCOL.md %s %q annotated dump:\n got % x\nwant % x", marker, f.Name, f.Dump, frame)
		}
		if f.OneLine != Spaced(frame) {
			t.Errorf("PROTOCOL.md %s %q one-line hex:\n got %s\nwant %s", marker, f.Name, f.OneLine, Spaced(frame))
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("%s %q missing from PROTOCOL.md", marker, name)
		}
	}
	return found
}
