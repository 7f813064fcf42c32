package media

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/html"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/netguard"
	"github.com/tributary-hs/tributary/core/types"
)

// PreviewOptions configure URL previews.
type PreviewOptions struct {
	Enabled bool
	// Allowed are ranges the guard lets through although they are blocked
	// (loopback for tests, an internal wiki…).
	Allowed []netip.Prefix
	// MaxBytes caps a fetched page or image.
	MaxBytes int64
	Timeout  time.Duration
	CacheTTL time.Duration
}

type previewer struct {
	s      *Service
	opts   PreviewOptions
	client *http.Client
}

// ErrBlockedAddress is the guard's refusal.
var ErrBlockedAddress = netguard.ErrBlocked

func newPreviewer(s *Service, opts PreviewOptions) *previewer {
	if opts.MaxBytes == 0 {
		opts.MaxBytes = 4 << 20
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.CacheTTL == 0 {
		opts.CacheTTL = time.Hour
	}
	p := &previewer{s: s, opts: opts}
	dialer := netguard.Guard{Allowed: opts.Allowed}.Dialer(opts.Timeout)
	p.client = &http.Client{
		Timeout:   opts.Timeout,
		Transport: &http.Transport{DialContext: dialer.DialContext, Proxy: nil, MaxIdleConns: 16, IdleConnTimeout: 30 * time.Second},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return errors.New("redirect to a non-HTTP URL")
			}
			return nil
		},
	}
	return p
}

// PreviewURL returns OpenGraph data for a URL (GET /_matrix/client/v1/media/preview_url).
func (s *Service) PreviewURL(ctx context.Context, user id.UserID, rawURL string) (json.RawMessage, error) {
	p := s.preview
	if !p.opts.Enabled {
		return nil, types.Forbidden("URL previews are disabled on this server")
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, types.InvalidParam("url must be an http or https URL")
	}
	now := s.opts.Now()
	if cached, err := s.records.GetURLPreview(ctx, u.String(), now.Add(-p.opts.CacheTTL).UnixMilli()); err == nil {
		return cached, nil
	}
	og, err := p.fetch(ctx, user, u)
	if err != nil {
		return nil, err
	}
	raw, _ := json.Marshal(og)
	if err := s.records.PutURLPreview(ctx, u.String(), now.UnixMilli(), raw); err != nil {
		return nil, err
	}
	return raw, nil
}

func (p *previewer) get(ctx context.Context, u string) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("User-Agent", "Tributary URL preview (Matrix homeserver)")
	req.Header.Set("Accept", "text/html,application/xhtml+xml,image/*;q=0.9,*/*;q=0.5")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, p.opts.MaxBytes+1))
	if err != nil {
		return nil, nil, err
	}
	if int64(len(body)) > p.opts.MaxBytes {
		return nil, nil, ErrTooLarge
	}
	return resp, body, nil
}

func (p *previewer) fetch(ctx context.Context, user id.UserID, u *url.URL) (map[string]any, error) {
	resp, body, err := p.get(ctx, u.String())
	if err != nil {
		if errors.Is(err, ErrBlockedAddress) {
			return nil, types.Forbidden("Previews of this address are not allowed")
		}
		if errors.Is(err, ErrTooLarge) {
			return nil, types.TooLarge("The page is too large to preview")
		}
		return nil, types.NewError(http.StatusBadGateway, types.CodeUnknown, "Could not fetch the URL")
	}
	if resp.StatusCode/100 != 2 {
		return nil, types.NewError(http.StatusBadGateway, types.CodeUnknown, "The URL answered %d", resp.StatusCode)
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	og := map[string]any{}
	switch {
	case strings.HasPrefix(ct, "image/"):
		p.addImage(ctx, user, og, body, ct)
	case ct == "text/html" || ct == "application/xhtml+xml":
		oembed := parseOpenGraph(body, og)
		if oembed != "" {
			p.addOEmbed(ctx, u, oembed, og)
		}
		if img, ok := og["og:image"].(string); ok && img != "" {
			delete(og, "og:image")
			if iu, err := u.Parse(img); err == nil && (iu.Scheme == "http" || iu.Scheme == "https") {
				if iresp, ibody, err := p.get(ctx, iu.String()); err == nil && iresp.StatusCode/100 == 2 {
					ict, _, _ := mime.ParseMediaType(iresp.Header.Get("Content-Type"))
					p.addImage(ctx, user, og, ibody, ict)
				}
			}
		}
	}
	return og, nil
}

// addImage stores a fetched image as media and describes it in og.
func (p *previewer) addImage(ctx context.Context, user id.UserID, og map[string]any, body []byte, ct string) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(body))
	if err != nil || int64(cfg.Width)*int64(cfg.Height) > p.s.opts.MaxImagePixels {
		return
	}
	mxc, err := p.s.Upload(ctx, user, ct, "", bytes.NewReader(body), int64(len(body)))
	if err != nil {
		return
	}
	og["og:image"] = mxc
	og["og:image:type"] = ct
	og["og:image:width"] = cfg.Width
	og["og:image:height"] = cfg.Height
	og["matrix:image:size"] = len(body)
}

// addOEmbed fills what the page's OpenGraph tags lack from its oEmbed
// JSON (oembed.com: title, author, provider, thumbnail).
func (p *previewer) addOEmbed(ctx context.Context, page *url.URL, href string, og map[string]any) {
	ou, err := page.Parse(href)
	if err != nil || (ou.Scheme != "http" && ou.Scheme != "https") {
		return
	}
	resp, body, err := p.get(ctx, ou.String())
	if err != nil || resp.StatusCode/100 != 2 {
		return
	}
	var oe struct {
		Title        string `json:"title"`
		AuthorName   string `json:"author_name"`
		ProviderName string `json:"provider_name"`
		ThumbnailURL string `json:"thumbnail_url"`
	}
	if json.Unmarshal(body, &oe) != nil {
		return
	}
	for key, val := range map[string]string{"og:title": oe.Title, "og:site_name": oe.ProviderName,
		"og:description": oe.AuthorName, "og:image": oe.ThumbnailURL} {
		if _, ok := og[key]; !ok && val != "" {
			og[key] = val
		}
	}
}

// parseOpenGraph reads og:* meta tags, falling back to <title> and the
// description meta tag; it returns the page's JSON oEmbed link, if any.
func parseOpenGraph(body []byte, og map[string]any) (oembed string) {
	z := html.NewTokenizer(bytes.NewReader(body))
	title, inTitle := "", false
	for {
		switch z.Next() {
		case html.ErrorToken:
			if _, ok := og["og:title"]; !ok && title != "" {
				og["og:title"] = strings.TrimSpace(title)
			}
			return oembed
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			switch tok.Data {
			case "title":
				inTitle = true
			case "link":
				var rel, typ, href string
				for _, a := range tok.Attr {
					switch a.Key {
					case "rel":
						rel = a.Val
					case "type":
						typ = a.Val
					case "href":
						href = a.Val
					}
				}
				if rel == "alternate" && typ == "application/json+oembed" && oembed == "" {
					oembed = href
				}
			case "meta":
				var prop, content string
				for _, a := range tok.Attr {
					switch a.Key {
					case "property", "name":
						prop = strings.ToLower(a.Val)
					case "content":
						content = a.Val
					}
				}
				if strings.HasPrefix(prop, "og:") && len(content) <= 2000 {
					if _, dup := og[prop]; !dup {
						og[prop] = content
					}
				} else if prop == "description" {
					if _, ok := og["og:description"]; !ok {
						og["og:description"] = content
					}
				}
			}
		case html.TextToken:
			if inTitle && len(title) < 2000 {
				title += string(z.Text())
			}
		case html.EndTagToken:
			if tok := z.Token(); tok.Data == "title" {
				inTitle = false
			} else if tok.Data == "head" {
				if _, ok := og["og:title"]; !ok && title != "" {
					og["og:title"] = strings.TrimSpace(title)
				}
				return oembed
			}
		}
	}
}
