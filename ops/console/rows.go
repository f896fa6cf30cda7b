package console

import (
	"html"
	"html/template"
	"strconv"
	"strings"
)

// The two tables that grow with what they list (a runtime's versions, a directory's
// entries) are written here rather than by a template: html/template spends a reflected
// call on every value it escapes, which made a page of 10,000 versions take 0.3 s. Every
// value goes through html.EscapeString (quotes too: attribute values are always quoted);
// URLs are made by versionURL/url.QueryEscape before.

func esc(b *strings.Builder, s string) { b.WriteString(html.EscapeString(s)) }

func versionRowsHTML(rows []versionRow) template.HTML {
	var b strings.Builder
	b.Grow(len(rows) * 700)
	for i := range rows {
		r := &rows[i]
		if r.Removed {
			b.WriteString(`<tr class="removed">`)
		} else {
			b.WriteString(`<tr>`)
		}
		b.WriteString(`<td><input type="checkbox" name="v" value="`)
		esc(&b, r.Version)
		b.WriteString(`" aria-label="compare `)
		esc(&b, r.Short)
		b.WriteString(`"></td><td><a class="id" href="`)
		esc(&b, string(r.Overview))
		b.WriteString(`" title="`)
		esc(&b, r.Version)
		b.WriteString(`">`)
		esc(&b, r.Short)
		b.WriteString(`</a>`)
		if r.Removed {
			b.WriteString(` <em>removed</em>`)
		}
		for _, cell := range []string{r.TagList, r.SizeText, r.NewText, r.Python, r.Mode, r.CreatedText, r.Actor} {
			b.WriteString(`</td><td>`)
			esc(&b, cell)
		}
		b.WriteString(`</td><td><code class="cmd">`)
		esc(&b, r.Copy)
		b.WriteString("</code></td></tr>\n")
	}
	return template.HTML(b.String())
}

func treeRowsHTML(rows []treeRow) template.HTML {
	var b strings.Builder
	b.Grow(len(rows) * 250)
	for i := range rows {
		r := &rows[i]
		b.WriteString(`<tr><td>`)
		switch r.Kind {
		case "dir":
			b.WriteString(`<a href="`)
			esc(&b, string(r.Href))
			b.WriteString(`">`)
			esc(&b, r.Name)
			b.WriteString(`/</a></td><td>`)
			esc(&b, r.SizeText)
			b.WriteString(`</td><td>`)
			b.WriteString(strconv.Itoa(r.Files))
		case "symlink":
			esc(&b, r.Name)
			b.WriteString(` → `)
			esc(&b, r.Target)
			b.WriteString(`</td><td></td><td>`)
		default:
			b.WriteString(`<a href="`)
			esc(&b, string(r.Href))
			b.WriteString(`">`)
			esc(&b, r.Name)
			b.WriteString(`</a></td><td>`)
			esc(&b, r.SizeText)
			b.WriteString(`</td><td>`)
		}
		b.WriteString(`</td><td>`)
		esc(&b, r.Mode)
		b.WriteString("</td></tr>\n")
	}
	return template.HTML(b.String())
}
