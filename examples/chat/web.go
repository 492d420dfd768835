package main

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

//go:embed web
var webFiles embed.FS

// findSDK returns dir, or the first client/js/dist found from the working directory
// upwards, checking that it holds the built SDK.
func findSDK(dir string) (string, error) {
	if dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "index.js")); err != nil {
			return "", fmt.Errorf("-sdk %s: no index.js (build it: cd client/js && npm ci && npm run build): %w", dir, err)
		}
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		cand := filepath.Join(d, "client", "js", "dist")
		if _, err := os.Stat(filepath.Join(cand, "index.js")); err == nil {
			return cand, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("the TypeScript SDK is not built: run `cd client/js && npm ci && npm run build` in the repository, or pass -sdk")
		}
	}
}

// sample is a media file the example serves itself, so the page has real media to
// send without any upload service (the chat service never stores media).
type sample struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Media Media  `json:"media"`
}

// samples draws the sample image and its thumbnail.
func samples() (map[string][]byte, []sample) {
	draw := func(w, h int) []byte {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				// A sunset: orange sky fading to purple, a yellow sun, dark sea.
				sky := color.RGBA{R: uint8(250 - 120*y/h), G: uint8(150 - 110*y/h), B: uint8(60 + 120*y/h), A: 255}
				dx, dy := x-w/2, y-h*3/5
				switch {
				case y > h*3/5:
					sky = color.RGBA{R: 30, G: 40, B: uint8(90 + 40*(h-y)/h), A: 255}
				case dx*dx+dy*dy < (h/5)*(h/5):
					sky = color.RGBA{R: 255, G: 220, B: 90, A: 255}
				}
				img.Set(x, y, sky)
			}
		}
		var b bytes.Buffer
		png.Encode(&b, img)
		return b.Bytes()
	}
	full, thumb := draw(640, 400), draw(160, 100)
	files := map[string][]byte{"/samples/sunset.png": full, "/samples/sunset-thumb.png": thumb}
	return files, []sample{{
		Name: "sunset.png", Type: "image",
		Media: Media{URL: "/samples/sunset.png", Mime: "image/png", Size: int64(len(full)), Name: "sunset.png", Width: 640, Height: 400, ThumbURL: "/samples/sunset-thumb.png"},
	}}
}

// newWeb serves the page (web/, embedded in the binary), the SDK from sdkDir under
// /sdk/, the page's configuration (/config.json: the gateway's WebSocket URL) and the
// sample media.
func newWeb(wsURL, sdkDir string, recallWindow time.Duration) http.Handler {
	mux := http.NewServeMux()
	page, _ := fs.Sub(webFiles, "web")
	mux.Handle("GET /", http.FileServerFS(page))
	mux.Handle("GET /sdk/", http.StripPrefix("/sdk/", http.FileServer(http.Dir(sdkDir))))
	files, list := samples()
	cfg, _ := json.Marshal(map[string]any{"ws_url": wsURL, "recall_window_ms": recallWindow.Milliseconds(), "samples": list})
	mux.HandleFunc("GET /config.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(cfg)
	})
	for path, body := range files {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "image/png")
			w.Write(body)
		})
	}
	return mux
}
