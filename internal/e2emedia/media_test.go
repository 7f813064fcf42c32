// Package e2emedia drives the media repository of the real binary.
package e2emedia

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/tributary-hs/tributary/internal/testserver"
)

const password = "media-password-1"

func start(t *testing.T, config string) *testserver.Server {
	t.Helper()
	dir := t.TempDir()
	if config != "" {
		if err := os.WriteFile(filepath.Join(dir, "tributary.yaml"), []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return testserver.Start(t, testserver.Options{DataDir: dir, Args: []string{"--enable-registration", "--disable-rate-limits"}})
}

func register(t *testing.T, srv *testserver.Server, name string) *mautrix.Client {
	t.Helper()
	return srv.Register(t, &mautrix.ReqRegister[any]{Username: name, Password: password})
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, srv *testserver.Server, method, path, token, contentType string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, raw}
}

func (a answer) errcode() string {
	var m struct {
		Errcode string `json:"errcode"`
	}
	_ = jsonUnmarshal(a.body, &m)
	return m.Errcode
}

func upload(t *testing.T, srv *testserver.Server, token, ct, name string, body []byte) (string, string) {
	t.Helper()
	a := do(t, srv, "POST", "/_matrix/media/v3/upload?filename="+url.QueryEscape(name), token, ct, body)
	if a.status != 200 {
		t.Fatalf("upload: %d %s", a.status, a.body)
	}
	var m struct {
		URI string `json:"content_uri"`
	}
	if err := jsonUnmarshal(a.body, &m); err != nil || !strings.HasPrefix(m.URI, "mxc://localhost/") {
		t.Fatalf("content_uri %q: %v", m.URI, err)
	}
	return "localhost", strings.TrimPrefix(m.URI, "mxc://localhost/")
}

func pngImage(w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for x := range w {
		for y := range h {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 100, 255})
		}
	}
	var buf bytes.Buffer
	_ = png.Encode(&buf, img)
	return buf.Bytes()
}

func jpegImage(w, h int) []byte {
	var buf bytes.Buffer
	_ = jpeg.Encode(&buf, image.NewRGBA(image.Rect(0, 0, w, h)), nil)
	return buf.Bytes()
}

func gifAnimation(w, h, frames int) []byte {
	g := &gif.GIF{}
	pal := color.Palette{color.Black, color.White, color.RGBA{255, 0, 0, 255}}
	for i := range frames {
		f := image.NewPaletted(image.Rect(0, 0, w, h), pal)
		for x := range w {
			f.SetColorIndex(x, i%h, uint8(1+i%2))
		}
		g.Image = append(g.Image, f)
		g.Delay = append(g.Delay, 10)
	}
	var buf bytes.Buffer
	_ = gif.EncodeAll(&buf, g)
	return buf.Bytes()
}

// bomb is a tiny PNG whose header claims 60000×60000 pixels.
func bomb() []byte {
	b := pngImage(1, 1)
	// IHDR data starts at byte 16: width, height (big endian), then the CRC at 29.
	binary.BigEndian.PutUint32(b[16:], 60000)
	binary.BigEndian.PutUint32(b[20:], 60000)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

func decode(t *testing.T, body []byte) (image.Image, string) {
	t.Helper()
	img, format, err := image.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("thumbnail does not decode: %v", err)
	}
	return img, format
}

func TestUploadDownloadThumbnail(t *testing.T) {
	srv := start(t, "")
	alice := register(t, srv, "alice")
	tok := alice.AccessToken

	original := pngImage(400, 300)
	server, id := upload(t, srv, tok, "image/png", "holiday.png", original)
	got := do(t, srv, "GET", "/_matrix/client/v1/media/download/"+server+"/"+id, tok, "", nil)
	if got.status != 200 || !bytes.Equal(got.body, original) {
		t.Fatalf("download: %d, %d bytes", got.status, len(got.body))
	}
	for k, want := range map[string]string{"Content-Type": "image/png", "X-Content-Type-Options": "nosniff",
		"Content-Disposition": `inline; filename=holiday.png`} {
		if v := got.header.Get(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	if !strings.HasPrefix(got.header.Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("CSP %q", got.header.Get("Content-Security-Policy"))
	}
	// A file name in the path replaces the stored one.
	named := do(t, srv, "GET", "/_matrix/client/v1/media/download/"+server+"/"+id+"/other.png", tok, "", nil)
	if named.header.Get("Content-Disposition") != "inline; filename=other.png" {
		t.Errorf("named download disposition %q", named.header.Get("Content-Disposition"))
	}
	if a := do(t, srv, "GET", "/_matrix/client/v1/media/download/"+server+"/"+id, "", "", nil); a.status != 401 || a.errcode() != "M_MISSING_TOKEN" {
		t.Errorf("unauthenticated v1 download: %d %s", a.status, a.body)
	}
	// The legacy endpoints are frozen: new media is not served there.
	if a := do(t, srv, "GET", "/_matrix/media/v3/download/"+server+"/"+id, "", "", nil); a.status != 404 || a.errcode() != "M_NOT_FOUND" {
		t.Errorf("legacy download of new media: %d %s", a.status, a.body)
	}

	for _, tc := range []struct {
		w, h       int
		method     string
		maxW, maxH int
		exact      bool
	}{{96, 96, "crop", 96, 96, true}, {320, 240, "scale", 320, 240, false}, {50, 50, "scale", 50, 50, false},
		{1000, 1000, "scale", 400, 300, false}} {
		a := do(t, srv, "GET", fmt.Sprintf("/_matrix/client/v1/media/thumbnail/%s/%s?width=%d&height=%d&method=%s",
			server, id, tc.w, tc.h, tc.method), tok, "", nil)
		if a.status != 200 {
			t.Fatalf("thumbnail %dx%d %s: %d %s", tc.w, tc.h, tc.method, a.status, a.body)
		}
		img, _ := decode(t, a.body)
		b := img.Bounds()
		// A larger stored thumbnail may answer a small request, never a smaller one.
		if tc.exact && (b.Dx() != tc.maxW || b.Dy() != tc.maxH) {
			t.Errorf("crop %dx%d gave %dx%d", tc.w, tc.h, b.Dx(), b.Dy())
		}
		if !tc.exact && (b.Dx() > 800 || b.Dx() > 400 || b.Dy() > 300) {
			t.Errorf("scale %dx%d gave %dx%d (upscaled?)", tc.w, tc.h, b.Dx(), b.Dy())
		}
	}

	jpg := jpegImage(1024, 768)
	js, jid := upload(t, srv, tok, "image/jpeg", "photo.jpg", jpg)
	a := do(t, srv, "GET", "/_matrix/client/v1/media/thumbnail/"+js+"/"+jid+"?width=320&height=240", tok, "", nil)
	if img, format := decode(t, a.body); format != "jpeg" || img.Bounds().Dx() != 320 {
		t.Errorf("jpeg thumbnail %s %v", format, img.Bounds())
	}

	anim := gifAnimation(200, 100, 4)
	gs, gid := upload(t, srv, tok, "image/gif", "spin.gif", anim)
	a = do(t, srv, "GET", "/_matrix/client/v1/media/thumbnail/"+gs+"/"+gid+"?width=100&height=50&animated=true", tok, "", nil)
	if a.status != 200 || a.header.Get("Content-Type") != "image/gif" {
		t.Fatalf("animated thumbnail: %d %s", a.status, a.header.Get("Content-Type"))
	}
	g, err := gif.DecodeAll(bytes.NewReader(a.body))
	if err != nil || len(g.Image) != 4 || g.Image[0].Bounds().Dx() > 100 {
		t.Fatalf("animated thumbnail: %v, %d frames", err, len(g.Image))
	}
	a = do(t, srv, "GET", "/_matrix/client/v1/media/thumbnail/"+gs+"/"+gid+"?width=100&height=50", tok, "", nil)
	if _, format := decode(t, a.body); format != "png" {
		t.Errorf("still thumbnail of a GIF is %s", format)
	}

	// A file that is not an image: served as an attachment or plain text, no thumbnail.
	ts, tid := upload(t, srv, tok, "text/html", "../../etc/passwd", []byte("<script>alert(1)</script>"))
	a = do(t, srv, "GET", "/_matrix/client/v1/media/download/"+ts+"/"+tid, tok, "", nil)
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("HTML served as %q", ct)
	}
	if cd := a.header.Get("Content-Disposition"); cd != "inline; filename=passwd" {
		t.Errorf("path traversal in file name: %q", cd)
	}
	a = do(t, srv, "GET", "/_matrix/client/v1/media/thumbnail/"+ts+"/"+tid+"?width=32&height=32", tok, "", nil)
	if a.status != 400 || a.errcode() != "M_UNKNOWN" {
		t.Errorf("thumbnail of HTML: %d %s", a.status, a.body)
	}
	bs, bid := upload(t, srv, tok, "application/octet-stream", "data.bin", []byte{0, 1, 2, 3})
	a = do(t, srv, "GET", "/_matrix/client/v1/media/download/"+bs+"/"+bid, tok, "", nil)
	if cd := a.header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") {
		t.Errorf("binary disposition %q", cd)
	}

	// Broken images are stored but never crash the thumbnailer.
	trunc := original[:len(original)/2]
	cs, cid := upload(t, srv, tok, "image/png", "broken.png", trunc)
	a = do(t, srv, "GET", "/_matrix/client/v1/media/thumbnail/"+cs+"/"+cid+"?width=32&height=32", tok, "", nil)
	if a.status != 400 || a.errcode() != "M_UNKNOWN" {
		t.Errorf("truncated image thumbnail: %d %s", a.status, a.body)
	}
	xs, xid := upload(t, srv, tok, "image/png", "bomb.png", bomb())
	a = do(t, srv, "GET", "/_matrix/client/v1/media/thumbnail/"+xs+"/"+xid+"?width=32&height=32", tok, "", nil)
	if a.status != 413 || a.errcode() != "M_TOO_LARGE" {
		t.Errorf("decompression bomb thumbnail: %d %s", a.status, a.body)
	}
	for _, bad := range []string{"?width=0&height=10", "?width=10", "?width=10&height=10&method=zoom", "?width=10&height=10&animated=maybe"} {
		if a := do(t, srv, "GET", "/_matrix/client/v1/media/thumbnail/"+server+"/"+id+bad, tok, "", nil); a.status != 400 {
			t.Errorf("thumbnail%s: %d", bad, a.status)
		}
	}
	if a := do(t, srv, "GET", "/_matrix/client/v1/media/download/localhost/nope", tok, "", nil); a.status != 404 {
		t.Errorf("unknown media: %d", a.status)
	}
	if a := do(t, srv, "GET", "/_matrix/client/v1/media/config", tok, "", nil); a.status != 200 || !bytes.Contains(a.body, []byte(`"m.upload.size":52428800`)) {
		t.Errorf("config: %d %s", a.status, a.body)
	}
}

func TestAsyncUpload(t *testing.T) {
	srv := start(t, "")
	alice, bob := register(t, srv, "alice"), register(t, srv, "bob")
	a := do(t, srv, "POST", "/_matrix/media/v1/create", alice.AccessToken, "", nil)
	var created struct {
		URI     string `json:"content_uri"`
		Expires int64  `json:"unused_expires_at"`
	}
	if err := jsonUnmarshal(a.body, &created); a.status != 200 || err != nil || created.Expires <= time.Now().UnixMilli() {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	path := strings.TrimPrefix(created.URI, "mxc://")
	if a := do(t, srv, "GET", "/_matrix/client/v1/media/download/"+path+"?timeout_ms=0", alice.AccessToken, "", nil); a.status != 504 || a.errcode() != "M_NOT_YET_UPLOADED" {
		t.Errorf("download before upload: %d %s", a.status, a.body)
	}
	if a := do(t, srv, "GET", "/_matrix/client/v1/media/download/"+path+"?timeout_ms=-5", alice.AccessToken, "", nil); a.status != 400 || a.errcode() != "M_INVALID_PARAM" {
		t.Errorf("negative timeout_ms: %d %s", a.status, a.body)
	}
	if a := do(t, srv, "PUT", "/_matrix/media/v3/upload/"+path, bob.AccessToken, "text/plain", []byte("bob")); a.status != 403 {
		t.Errorf("upload by another user: %d %s", a.status, a.body)
	}
	// A download that waits (timeout_ms) gets the media once it is uploaded.
	waited := make(chan answer, 1)
	go func() {
		waited <- do(t, srv, "GET", "/_matrix/client/v1/media/download/"+path+"?timeout_ms=30000", bob.AccessToken, "", nil)
	}()
	if a := do(t, srv, "PUT", "/_matrix/media/v3/upload/"+path, alice.AccessToken, "text/plain", []byte("hello")); a.status != 200 {
		t.Fatalf("upload: %d %s", a.status, a.body)
	}
	if a := <-waited; a.status != 200 || string(a.body) != "hello" {
		t.Errorf("waiting download: %d %s", a.status, a.body)
	}
	if a := do(t, srv, "PUT", "/_matrix/media/v3/upload/"+path, alice.AccessToken, "text/plain", []byte("again")); a.status != 409 || a.errcode() != "M_CANNOT_OVERWRITE_MEDIA" {
		t.Errorf("second upload: %d %s", a.status, a.body)
	}
	if a := do(t, srv, "GET", "/_matrix/client/v1/media/download/"+path, bob.AccessToken, "", nil); a.status != 200 || string(a.body) != "hello" {
		t.Errorf("download: %d %q", a.status, a.body)
	}
	if a := do(t, srv, "PUT", "/_matrix/media/v3/upload/localhost/unknown", alice.AccessToken, "text/plain", []byte("x")); a.status != 404 {
		t.Errorf("upload to an unknown ID: %d", a.status)
	}
}

func TestLimitsAndLegacy(t *testing.T) {
	srv := start(t, "media:\n  max_upload_bytes: 2048\n  user_quota_bytes: 3000\n  legacy_unauthenticated: true\n")
	alice := register(t, srv, "alice")
	if a := do(t, srv, "POST", "/_matrix/media/v3/upload", alice.AccessToken, "application/octet-stream", make([]byte, 4096)); a.status != 413 || a.errcode() != "M_TOO_LARGE" {
		t.Errorf("oversize upload: %d %s", a.status, a.body)
	}
	// Without a Content-Length (chunked), the limit is met while reading:
	// for a new upload and for one created before (async upload).
	a := do(t, srv, "POST", "/_matrix/media/v1/create", alice.AccessToken, "", nil)
	var created struct {
		URI string `json:"content_uri"`
	}
	if err := jsonUnmarshal(a.body, &created); a.status != 200 || err != nil {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	for _, target := range []struct{ method, path string }{
		{"POST", "/_matrix/media/v3/upload"},
		{"PUT", "/_matrix/media/v3/upload/" + strings.TrimPrefix(created.URI, "mxc://")},
	} {
		req, err := http.NewRequest(target.method, srv.URL+target.path, io.NopCloser(bytes.NewReader(make([]byte, 4096))))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = -1
		req.Header.Set("Authorization", "Bearer "+alice.AccessToken)
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if a := (answer{resp.StatusCode, resp.Header, raw}); a.status != 413 || a.errcode() != "M_TOO_LARGE" {
			t.Errorf("oversize chunked upload %s %s: %d %s", target.method, target.path, a.status, a.body)
		}
	}
	server, id := upload(t, srv, alice.AccessToken, "text/plain", "a.txt", make([]byte, 2000))
	if a := do(t, srv, "POST", "/_matrix/media/v3/upload", alice.AccessToken, "text/plain", make([]byte, 2000)); a.status != 403 || a.errcode() != "M_FORBIDDEN" {
		t.Errorf("upload past the quota: %d %s", a.status, a.body)
	}
	// With the legacy endpoints unfrozen, they serve without a token.
	if a := do(t, srv, "GET", "/_matrix/media/v3/download/"+server+"/"+id, "", "", nil); a.status != 200 || len(a.body) != 2000 {
		t.Errorf("legacy download: %d", a.status)
	}
}

func TestURLPreviewGuard(t *testing.T) {
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/video":
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, `<html><head><link rel="alternate" type="application/json+oembed" href="/oembed?x=1"></head></html>`)
			return
		case "/oembed":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"type":"video","version":"1.0","title":"A video","provider_name":"Tube","thumbnail_url":"/logo.png"}`)
			return
		}
		if r.URL.Path == "/logo.png" {
			w.Header().Set("Content-Type", "image/png")
			_, _ = w.Write(pngImage(64, 32))
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<html><head><title>Fallback</title><meta property="og:title" content="Tributary news">`+
			`<meta property="og:description" content="Bridges everywhere"><meta property="og:image" content="/logo.png"></head></html>`)
	}))
	defer page.Close()

	guarded := start(t, "media:\n  url_previews:\n    enabled: true\n")
	alice := register(t, guarded, "alice")
	a := do(t, guarded, "GET", "/_matrix/client/v1/media/preview_url?url="+url.QueryEscape(page.URL), alice.AccessToken, "", nil)
	if a.status != 403 || a.errcode() != "M_FORBIDDEN" {
		t.Fatalf("preview of loopback with the guard on: %d %s", a.status, a.body)
	}
	for _, bad := range []string{"ftp://example.org/x", "not a url", ""} {
		if a := do(t, guarded, "GET", "/_matrix/client/v1/media/preview_url?url="+url.QueryEscape(bad), alice.AccessToken, "", nil); a.status != 400 {
			t.Errorf("preview of %q: %d", bad, a.status)
		}
	}

	allowed := start(t, "media:\n  url_previews:\n    enabled: true\n    allowed_ranges: [\"127.0.0.0/8\"]\n")
	bob := register(t, allowed, "bob")
	a = do(t, allowed, "GET", "/_matrix/client/v1/media/preview_url?url="+url.QueryEscape(page.URL), bob.AccessToken, "", nil)
	if a.status != 200 {
		t.Fatalf("allowed preview: %d %s", a.status, a.body)
	}
	var og map[string]any
	_ = jsonUnmarshal(a.body, &og)
	if og["og:title"] != "Tributary news" || og["og:description"] != "Bridges everywhere" {
		t.Fatalf("preview %v", og)
	}
	img, _ := og["og:image"].(string)
	if !strings.HasPrefix(img, "mxc://localhost/") || og["og:image:width"] != 64.0 {
		t.Fatalf("preview image %v", og)
	}
	if a := do(t, allowed, "GET", "/_matrix/client/v1/media/download/"+strings.TrimPrefix(img, "mxc://"), bob.AccessToken, "", nil); a.status != 200 {
		t.Errorf("preview image download: %d", a.status)
	}
	// A page with only an oEmbed link.
	a = do(t, allowed, "GET", "/_matrix/client/v1/media/preview_url?url="+url.QueryEscape(page.URL+"/video"), bob.AccessToken, "", nil)
	og = nil
	_ = jsonUnmarshal(a.body, &og)
	if a.status != 200 || og["og:title"] != "A video" || og["og:site_name"] != "Tube" ||
		!strings.HasPrefix(fmt.Sprint(og["og:image"]), "mxc://") {
		t.Fatalf("oEmbed preview: %d %v", a.status, og)
	}
	// Disabled by default.
	plain := start(t, "")
	carol := register(t, plain, "carol")
	if a := do(t, plain, "GET", "/_matrix/client/v1/media/preview_url?url=https%3A%2F%2Fexample.org", carol.AccessToken, "", nil); a.status != 403 {
		t.Errorf("previews when disabled: %d", a.status)
	}
}

// exifJPEG is a w×h JPEG carrying an EXIF orientation tag.
func exifJPEG(w, h int, orientation uint16) []byte {
	plain := jpegImage(w, h)
	tiff := []byte("MM\x00\x2a\x00\x00\x00\x08" + // big-endian TIFF header, IFD at 8
		"\x00\x01" + // one entry
		"\x01\x12\x00\x03\x00\x00\x00\x01") // Orientation, SHORT, count 1
	tiff = binary.BigEndian.AppendUint16(tiff, orientation)
	tiff = append(tiff, 0, 0, 0, 0, 0, 0) // padding, no next IFD
	payload := append([]byte("Exif\x00\x00"), tiff...)
	app1 := []byte{0xFF, 0xE1}
	app1 = binary.BigEndian.AppendUint16(app1, uint16(len(payload)+2))
	app1 = append(app1, payload...)
	out := append([]byte{}, plain[:2]...) // SOI
	out = append(out, app1...)
	return append(out, plain[2:]...)
}

// Thumbnails follow the EXIF orientation of photos.
func TestThumbnailFollowsEXIFOrientation(t *testing.T) {
	srv := start(t, "")
	alice := register(t, srv, "alice")
	s, id := upload(t, srv, alice.AccessToken, "image/jpeg", "portrait.jpg", exifJPEG(400, 200, 6))
	a := do(t, srv, "GET", "/_matrix/client/v1/media/thumbnail/"+s+"/"+id+"?width=1000&height=1000", alice.AccessToken, "", nil)
	if a.status != 200 {
		t.Fatalf("thumbnail: %d %s", a.status, a.body)
	}
	img, _ := decode(t, a.body)
	if b := img.Bounds(); b.Dx() != 200 || b.Dy() != 400 {
		t.Fatalf("a 400×200 photo rotated by EXIF gave a %d×%d thumbnail, want 200×400", b.Dx(), b.Dy())
	}
}

// Uploads are rate-limited per user.
func TestUploadRateLimit(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tributary.yaml"),
		[]byte("media:\n  uploads: {per_second: 0.001, burst: 2}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{DataDir: dir, Args: []string{"--enable-registration"}})
	alice := register(t, srv, "alice")
	for i := range 2 {
		if a := do(t, srv, "POST", "/_matrix/media/v3/upload", alice.AccessToken, "text/plain", []byte("x")); a.status != 200 {
			t.Fatalf("upload %d: %d", i, a.status)
		}
	}
	if a := do(t, srv, "POST", "/_matrix/media/v3/upload", alice.AccessToken, "text/plain", []byte("x")); a.status != 429 || a.errcode() != "M_LIMIT_EXCEEDED" {
		t.Fatalf("third upload: %d %s", a.status, a.body)
	}
}

// URL previews fetch pages for the asker: each user has a budget of them.
func TestURLPreviewRateLimit(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tributary.yaml"),
		[]byte("media:\n  url_previews:\n    enabled: true\n  previews: {per_second: 0.001, burst: 2}\n"+
			"rate_limits:\n  register: {per_second: 100, burst: 100}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{DataDir: dir, Args: []string{"--enable-registration"}})
	alice := register(t, srv, "alice")
	bob := register(t, srv, "bob")
	path := "/_matrix/client/v1/media/preview_url?url=" + url.QueryEscape("http://127.0.0.1:1/")
	for i := range 2 {
		// Refused by the address guard, but only after the limit let it through.
		if a := do(t, srv, "GET", path, alice.AccessToken, "", nil); a.status == 429 {
			t.Fatalf("preview %d: %d %s", i, a.status, a.body)
		}
	}
	if a := do(t, srv, "GET", path, alice.AccessToken, "", nil); a.status != 429 || a.errcode() != "M_LIMIT_EXCEEDED" {
		t.Fatalf("third preview: %d %s", a.status, a.body)
	}
	if a := do(t, srv, "GET", path, bob.AccessToken, "", nil); a.status == 429 {
		t.Fatalf("another user's preview: %d %s", a.status, a.body)
	}
}
