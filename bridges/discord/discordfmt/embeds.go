// Package discordfmt renders Discord content for Matrix where the Discord
// bridge and `tributary import discord` must agree: embeds as quotes.
// It imports nothing of the module (the bridge may import only plugins/sdk
// and its own packages; the importer imports this one).
package discordfmt

import (
	"html"
	"strings"
)

// Embed is what of a Discord embed is shown on Matrix.
type Embed struct {
	Title, URL, Description string
	Author, Footer          string
	Fields                  []Field
}

// Field is an embed's named value.
type Field struct{ Name, Value string }

// Markdown renders Discord markdown as a plain body and HTML ("" when the
// body says it all).
type Markdown func(text string) (body, html string)

// QuoteEmbeds appends a message's embeds to its body and HTML, each as a
// quote: author, title (linked), description, fields, footer. Embeds with
// nothing to show are skipped; n is how many were added.
func QuoteEmbeds(body, htm string, embeds []Embed, md Markdown) (string, string, int) {
	n := 0
	for _, e := range embeds {
		var bl, hl []string
		if e.Author != "" {
			bl, hl = append(bl, e.Author), append(hl, "<sub>"+html.EscapeString(e.Author)+"</sub>")
		}
		if e.Title != "" {
			if strings.HasPrefix(e.URL, "https://") || strings.HasPrefix(e.URL, "http://") {
				bl = append(bl, e.Title+" ("+e.URL+")")
				hl = append(hl, `<strong><a href="`+html.EscapeString(e.URL)+`">`+html.EscapeString(e.Title)+"</a></strong>")
			} else {
				bl, hl = append(bl, e.Title), append(hl, "<strong>"+html.EscapeString(e.Title)+"</strong>")
			}
		}
		if e.Description != "" {
			b, h := md(e.Description)
			bl, hl = append(bl, b), append(hl, HTMLOr(b, h))
		}
		for _, fl := range e.Fields {
			b, h := md(fl.Value)
			bl = append(bl, fl.Name+": "+b)
			hl = append(hl, "<strong>"+html.EscapeString(fl.Name)+"</strong>: "+HTMLOr(b, h))
		}
		if e.Footer != "" {
			bl, hl = append(bl, e.Footer), append(hl, "<sub>"+html.EscapeString(e.Footer)+"</sub>")
		}
		if len(bl) == 0 {
			continue
		}
		if htm == "" {
			htm = HTMLOr(body, "")
		}
		if body != "" {
			body += "\n"
		}
		body += "> " + strings.Join(bl, "\n> ")
		htm += "<blockquote>" + strings.Join(hl, "<br>") + "</blockquote>"
		n++
	}
	return body, htm, n
}

// HTMLOr is htm, or the body as HTML when there is none.
func HTMLOr(body, htm string) string {
	if htm != "" {
		return htm
	}
	return strings.ReplaceAll(html.EscapeString(body), "\n", "<br>")
}
