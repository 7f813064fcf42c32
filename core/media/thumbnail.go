package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color/palette"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/disintegration/imaging"
	_ "golang.org/x/image/webp" // decode WebP uploads

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// thumbnailSizes are made at upload for images (Synapse's defaults), so the
// sizes clients ask for most are ready.
var thumbnailSizes = []struct {
	w, h   int
	method string
}{{32, 32, "crop"}, {96, 96, "crop"}, {320, 240, "scale"}, {640, 480, "scale"}, {800, 600, "scale"}}

// maxThumbnailSide bounds the thumbnails made on request.
const maxThumbnailSide = 1600

func isThumbnailable(ct string) bool {
	base, _, _ := strings.Cut(ct, ";")
	switch strings.TrimSpace(strings.ToLower(base)) {
	case "image/jpeg", "image/png", "image/gif", "image/webp":
		return true
	}
	return false
}

// pregenerate makes the common thumbnails of an image upload; failures
// (a truncated image) only mean there are none.
func (s *Service) pregenerate(ctx context.Context, m *storage.Media) {
	if !isThumbnailable(m.ContentType) {
		return
	}
	for _, sz := range thumbnailSizes {
		if _, err := s.generate(ctx, m, sz.w, sz.h, sz.method, false); err != nil {
			s.log.Debug("thumbnail at upload", "media", m.MediaID, "err", err)
			return
		}
	}
}

// Thumbnail serves a thumbnail of at least the asked size when one is
// stored, else makes one (GET …/thumbnail/{serverName}/{mediaId}).
func (s *Service) Thumbnail(ctx context.Context, server, mediaID string, w, h int, method string, animated, legacy bool, wait time.Duration) (*Content, error) {
	if w < 1 || h < 1 || w > 10000 || h > 10000 {
		return nil, types.InvalidParam("width and height must be between 1 and 10000")
	}
	switch method {
	case "":
		method = "scale"
	case "scale", "crop":
	default:
		return nil, types.InvalidParam("method must be scale or crop")
	}
	m, err := s.get(ctx, server, mediaID, legacy, wait)
	if err != nil {
		return nil, err
	}
	if !isThumbnailable(m.ContentType) {
		return nil, types.NewError(http.StatusBadRequest, types.CodeUnknown, "Cannot thumbnail %s content", m.ContentType)
	}
	stored, err := s.records.Thumbnails(ctx, mediaID)
	if err != nil {
		return nil, err
	}
	var best *storage.Thumbnail
	for _, t := range stored {
		if t.Method == method && t.Animated == animated && t.Width >= int64(w) && t.Height >= int64(h) &&
			(best == nil || t.Width*t.Height < best.Width*best.Height) {
			best = t
		}
	}
	if best == nil {
		if best, err = s.generate(ctx, m, min(w, maxThumbnailSide), min(h, maxThumbnailSide), method, animated); err != nil {
			return nil, err
		}
	}
	f, err := s.files.Open(best.SHA256)
	if err != nil {
		return nil, err
	}
	return &Content{Body: f, ContentType: best.ContentType, Size: best.Size, ModTime: time.UnixMilli(m.CreatedAt)}, nil
}

// generate decodes the original (refusing images over the pixel limit),
// makes a thumbnail and stores it.
func (s *Service) generate(ctx context.Context, m *storage.Media, w, h int, method string, animated bool) (*storage.Thumbnail, error) {
	f, err := s.files.Open(m.SHA256)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cfg, format, err := image.DecodeConfig(f)
	if err != nil {
		return nil, types.NewError(http.StatusBadRequest, types.CodeUnknown, "The image cannot be decoded")
	}
	if int64(cfg.Width)*int64(cfg.Height) > s.opts.MaxImagePixels {
		return nil, types.TooLarge("The image is too large to thumbnail")
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	ct := "image/jpeg"
	switch {
	case animated && format == "gif":
		ct = "image/gif"
		err = animatedThumbnail(f, &out, w, h, method, s.opts.MaxImagePixels)
	default:
		var img image.Image
		img, err = imaging.Decode(f, imaging.AutoOrientation(true))
		if err != nil {
			return nil, types.NewError(http.StatusBadRequest, types.CodeUnknown, "The image cannot be decoded")
		}
		img = resize(img, w, h, method)
		if format == "png" || format == "gif" || format == "webp" {
			ct = "image/png" // keep transparency
			err = png.Encode(&out, img)
		} else {
			err = jpeg.Encode(&out, img, &jpeg.Options{Quality: 80})
		}
	}
	if err != nil {
		var me *types.Error
		if errors.As(err, &me) {
			return nil, err
		}
		return nil, types.NewError(http.StatusBadRequest, types.CodeUnknown, "The image cannot be thumbnailed")
	}
	sha, size, err := s.files.Put(&out, int64(out.Len()))
	if err != nil {
		return nil, err
	}
	t := &storage.Thumbnail{MediaID: m.MediaID, Width: int64(w), Height: int64(h), Method: method, Animated: animated,
		ContentType: ct, Size: size, SHA256: sha}
	if err := s.records.PutThumbnail(ctx, t); err != nil {
		return nil, fmt.Errorf("store thumbnail: %w", err)
	}
	return t, nil
}

// resize never enlarges: "scale" fits the image in the box, "crop" fills
// it and cuts the overflow from the centre.
func resize(img image.Image, w, h int, method string) image.Image {
	b := img.Bounds()
	if method == "crop" {
		if b.Dx() < w || b.Dy() < h {
			w, h = min(w, b.Dx()), min(h, b.Dy())
		}
		return imaging.Fill(img, w, h, imaging.Center, imaging.Lanczos)
	}
	if b.Dx() <= w && b.Dy() <= h {
		return img
	}
	return imaging.Fit(img, w, h, imaging.Lanczos)
}

// animatedThumbnail resizes every frame of a GIF, compositing frames onto a
// canvas first so that partial frames come out whole.
func animatedThumbnail(r io.Reader, out io.Writer, w, h int, method string, maxPixels int64) error {
	g, err := gif.DecodeAll(r)
	if err != nil {
		return err
	}
	if int64(g.Config.Width)*int64(g.Config.Height)*int64(len(g.Image)) > maxPixels*4 {
		return types.TooLarge("The animation is too large to thumbnail")
	}
	canvas := image.NewRGBA(image.Rect(0, 0, g.Config.Width, g.Config.Height))
	res := &gif.GIF{LoopCount: g.LoopCount, Delay: slices.Clone(g.Delay)}
	for _, frame := range g.Image {
		draw.Draw(canvas, frame.Bounds(), frame, frame.Bounds().Min, draw.Over)
		small := resize(canvas, w, h, method)
		pal := image.NewPaletted(small.Bounds(), palette.Plan9)
		draw.FloydSteinberg.Draw(pal, small.Bounds(), small, small.Bounds().Min)
		res.Image = append(res.Image, pal)
		res.Disposal = append(res.Disposal, gif.DisposalNone)
	}
	return gif.EncodeAll(out, res)
}
