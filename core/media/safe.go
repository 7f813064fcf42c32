package media

import (
	"mime"
	"strings"
	"unicode"
)

// inlineTypes may be shown in the browser; everything else is an attachment.
// (The list of Synapse and the spec's recommendation: media that cannot run
// script in the server's origin.)
var inlineTypes = map[string]bool{
	"text/css": true, "text/plain": true, "text/csv": true, "application/json": true, "application/ld+json": true,
	"image/jpeg": true, "image/gif": true, "image/png": true, "image/apng": true, "image/webp": true, "image/avif": true,
	"video/mp4": true, "video/webm": true, "video/ogg": true, "video/quicktime": true,
	"audio/mp4": true, "audio/webm": true, "audio/aac": true, "audio/mpeg": true, "audio/ogg": true,
	"audio/wave": true, "audio/wav": true, "audio/x-wav": true, "audio/x-pn-wav": true, "audio/flac": true,
	"audio/x-flac": true,
}

// SafeContentType returns the type to serve and whether it may be inline.
func SafeContentType(ct string) (string, bool) {
	base, _, err := mime.ParseMediaType(ct)
	if err != nil || base == "" {
		return "application/octet-stream", false
	}
	if strings.HasPrefix(base, "text/") && base != "text/plain" && base != "text/css" && base != "text/csv" {
		// text/html and friends would run in the server's origin.
		return "text/plain; charset=utf-8", true
	}
	return ct, inlineTypes[base]
}

// SanitizeFileName keeps a file name to one harmless path component.
func SanitizeFileName(name string) string {
	name = strings.ReplaceAll(name, "\\", "/")
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '"' {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if name == "." || name == ".." {
		name = ""
	}
	if len(name) > 255 {
		name = name[:255]
	}
	return name
}

// ContentDisposition is the header for serving a file under name.
func ContentDisposition(inline bool, name string) string {
	kind := "attachment"
	if inline {
		kind = "inline"
	}
	name = SanitizeFileName(name)
	if name == "" {
		return kind
	}
	return mime.FormatMediaType(kind, map[string]string{"filename": name})
}
