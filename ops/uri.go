package ops

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/swcli/swcli/ledger"
)

// InstanceRef names an instance as a URI gives it: "" (the selected one), "local", an alias
// (from cloud://ALIAS or a bare alias) or a URL.
type InstanceRef struct {
	Alias string // "local", a login alias, or "" for the selected instance
	URL   string // http(s)://host:port when given as a URL
}

// IsLocal reports whether the reference is the standalone instance (explicitly or, with
// selected, by default).
func (r InstanceRef) IsLocal(selected string) bool {
	if r.URL != "" {
		return false
	}
	a := r.Alias
	if a == "" {
		a = selected
	}
	return a == "" || a == "local"
}

func (r InstanceRef) String() string {
	switch {
	case r.URL != "":
		return r.URL
	case r.Alias == "" || r.Alias == "local":
		return "local"
	}
	return "cloud://" + r.Alias
}

// ProjectURI is [<instance>/project/]<project>.
type ProjectURI struct {
	Instance InstanceRef
	Project  string // "" for the selected project
}

// RuntimeURI is [<project uri>/runtime/]<name>[/version/<version>].
type RuntimeURI struct {
	ProjectURI
	Name    string
	Version string // id, prefix or tag; "" for the whole runtime
}

// String is the URI as a user can paste it back: relative to the selected project when it
// names none.
func (u RuntimeURI) String() string {
	s := u.Name
	if u.Project != "" {
		s = fmt.Sprintf("%s/project/%s/runtime/%s", u.Instance, u.Project, u.Name)
	}
	if u.Version != "" {
		s += "/version/" + u.Version
	}
	return s
}

func usageErr(hint, format string, args ...any) error {
	return Errorf(KindUsage, hint, format, args...)
}

// ParseProjectURI parses a project URI.
func ParseProjectURI(s string) (ProjectURI, error) {
	var u ProjectURI
	if s == "" {
		return u, nil
	}
	rest := s
	inst, proj, ok := cutLastSegment(rest, "/project/")
	if ok {
		ref, err := parseInstance(inst)
		if err != nil {
			return u, err
		}
		u.Instance, rest = ref, proj
	} else if strings.Contains(rest, "://") {
		return u, usageErr("a project URI looks like cloud://ALIAS/project/NAME", "project URI %q has no /project/ part", s)
	}
	if !IsProjectID(rest) && !ledger.ValidName(rest) {
		return u, usageErr("a project is a name (a letter or _, then letters, digits, _ . -; 80 at most) or a numeric id", "invalid project name %q in %q", rest, s)
	}
	u.Project = NormalizeName(rest)
	return u, nil
}

// NormalizeName is how project and runtime names are kept and compared: in lowercase, as
// Starwhale keeps runtime names. Two names that differ only in case name the same thing.
func NormalizeName(s string) string { return strings.ToLower(s) }

// IsProjectID reports whether a project reference is a numeric id (as in Starwhale's
// cloud://pre-k8s/project/1): digits only, which no name can be.
func IsProjectID(s string) bool {
	if s == "" || len(s) > 18 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ParseInstance parses an instance reference: local, cloud://ALIAS, an alias or a URL.
func ParseInstance(s string) (InstanceRef, error) { return parseInstance(s) }

func parseInstance(s string) (InstanceRef, error) {
	switch {
	case strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://"):
		return InstanceRef{URL: strings.TrimRight(s, "/")}, nil
	case strings.HasPrefix(s, "cloud://"):
		s = strings.TrimPrefix(s, "cloud://")
	}
	if s == "" || strings.ContainsAny(s, "/:") {
		return InstanceRef{}, usageErr("an instance is local, cloud://ALIAS, an alias or http(s)://host:port", "invalid instance %q", s)
	}
	return InstanceRef{Alias: s}, nil
}

// cutLastSegment splits s around the last sep.
func cutLastSegment(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

var versionRefRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,80}$`)

// ParseRuntimeURI parses a runtime URI.
func ParseRuntimeURI(s string) (RuntimeURI, error) {
	var u RuntimeURI
	if s == "" {
		return u, usageErr("give a runtime name, e.g. mnist or mnist/version/latest", "empty runtime URI")
	}
	rest := s
	if r, v, ok := cutLastSegment(rest, "/version/"); ok {
		if !versionRefRE.MatchString(v) {
			return u, usageErr("a version is an id, a unique prefix of 5+ characters, or a tag", "invalid version in %q", s)
		}
		rest, u.Version = r, v
	}
	if p, name, ok := cutLastSegment(rest, "/runtime/"); ok {
		pu, err := ParseProjectURI(p)
		if err != nil {
			return u, err
		}
		u.ProjectURI, rest = pu, name
	}
	if !ledger.ValidName(rest) {
		return u, usageErr("a runtime URI is [PROJECT/runtime/]NAME[/version/VERSION]", "invalid runtime name %q in %q", rest, s)
	}
	u.Name = NormalizeName(rest)
	return u, nil
}
