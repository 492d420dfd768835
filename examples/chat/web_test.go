package main

import (
	"bytes"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWeb: the page, its configuration, the SDK directory and the sample media are
// served; the sample's metadata matches the image.
func TestWeb(t *testing.T) {
	sdk := t.TempDir()
	if err := os.WriteFile(filepath.Join(sdk, "index.js"), []byte("export const x = 1;"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := findSDK(sdk); err != nil {
		t.Fatal(err)
	}
	if _, err := findSDK(t.TempDir()); err == nil {
		t.Fatal("findSDK accepted a directory without index.js")
	}
	srv := httptest.NewServer(newWeb("ws://gw.example/ws", sdk, time.Minute))
	defer srv.Close()
	get := func(path string) (string, []byte) {
		t.Helper()
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			t.Fatalf("GET %s: %s", path, res.Status)
		}
		return res.Header.Get("Content-Type"), b
	}
	if _, b := get("/"); !bytes.Contains(b, []byte(`src="/app.js"`)) {
		t.Fatalf("index.html: %s", b)
	}
	if ct, _ := get("/app.js"); !strings.Contains(ct, "javascript") {
		t.Fatalf("app.js served as %q", ct)
	}
	if _, b := get("/sdk/index.js"); string(b) != "export const x = 1;" {
		t.Fatalf("sdk: %q", b)
	}
	_, b := get("/config.json")
	var cfg struct {
		WSURL   string   `json:"ws_url"`
		Recall  int64    `json:"recall_window_ms"`
		Samples []sample `json:"samples"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil || cfg.WSURL != "ws://gw.example/ws" || cfg.Recall != 60000 || len(cfg.Samples) != 1 {
		t.Fatalf("config %s: %v", b, err)
	}
	md := cfg.Samples[0].Media
	for _, u := range []string{md.URL, md.ThumbURL} {
		ct, body := get(u)
		img, err := png.Decode(bytes.NewReader(body))
		if err != nil || ct != "image/png" {
			t.Fatalf("%s: %q, %v", u, ct, err)
		}
		if u == md.URL && (img.Bounds().Dx() != md.Width || img.Bounds().Dy() != md.Height || int64(len(body)) != md.Size) {
			t.Fatalf("sample metadata %+v does not match the image %v, %d bytes", md, img.Bounds(), len(body))
		}
	}
}
