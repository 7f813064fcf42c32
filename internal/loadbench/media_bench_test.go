package loadbench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tributary-hs/tributary/internal/testserver"
)

func mediaServer(b *testing.B) (*testserver.Server, string) {
	srv := testserver.Start(b, testserver.Options{Args: []string{"--enable-registration", "--disable-rate-limits"}})
	code, body, err := call("POST", srv.URL+"/_matrix/client/v3/register", "", map[string]any{
		"username": "media", "password": "benchmark-password", "auth": map[string]any{"type": "m.login.dummy"}})
	if err != nil || code != 200 {
		b.Fatalf("register: %d %v", code, err)
	}
	return srv, body["access_token"].(string)
}

func rawCall(b *testing.B, method, u, token, ct string, body []byte) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		b.Fatalf("%s %s: %d %s", method, u, resp.StatusCode, out)
	}
	return out
}

func uploadFile(b *testing.B, srv *testserver.Server, tok, ct string, body []byte) string {
	var resp struct {
		URI string `json:"content_uri"`
	}
	_ = json.Unmarshal(rawCall(b, "POST", srv.URL+"/_matrix/media/v3/upload", tok, ct, body), &resp)
	return strings.TrimPrefix(resp.URI, "mxc://")
}

// BenchmarkMediaUpload measures upload throughput with 1 MiB files.
func BenchmarkMediaUpload(b *testing.B) {
	srv, tok := mediaServer(b)
	body := make([]byte, 1<<20)
	for i := range body {
		body[i] = byte(i * 7)
	}
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body[0] = byte(i) // distinct content: no deduplication
		body[1] = byte(i >> 8)
		uploadFile(b, srv, tok, "application/octet-stream", body)
	}
}

// BenchmarkMediaDownload measures download throughput of a 1 MiB file.
func BenchmarkMediaDownload(b *testing.B) {
	srv, tok := mediaServer(b)
	path := uploadFile(b, srv, tok, "application/octet-stream", make([]byte, 1<<20))
	b.SetBytes(1 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rawCall(b, "GET", srv.URL+"/_matrix/client/v1/media/download/"+path, tok, "", nil)
	}
}

// BenchmarkThumbnail measures making a new thumbnail (just over 800×600,
// larger than those made at upload) of a 2000×1500 PNG: each iteration asks
// a size not made before.
func BenchmarkThumbnail(b *testing.B) {
	srv, tok := mediaServer(b)
	img := image.NewRGBA(image.Rect(0, 0, 2000, 1500))
	for x := 0; x < 2000; x += 3 {
		for y := 0; y < 1500; y += 3 {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 7, 255})
		}
	}
	var buf bytes.Buffer
	_ = png.Encode(&buf, img)
	path := uploadFile(b, srv, tok, "image/png", buf.Bytes())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rawCall(b, "GET", fmt.Sprintf("%s/_matrix/client/v1/media/thumbnail/%s?width=%d&height=%d&method=scale",
			srv.URL, path, 801+i, 601+i), tok, "", nil)
	}
}
