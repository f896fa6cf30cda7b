package ops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/swcli/swcli/internal/flock"
	"github.com/swcli/swcli/internal/fsutil"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/client"
)

// Config is the client's configuration file (SWCLI_CONFIG, default
// ~/.config/swcli/config.yaml, mode 0600): the registered instances and what is selected.
type Config struct {
	CurrentInstance string                     `yaml:"current_instance"`
	Instances       map[string]*InstanceConfig `yaml:"instances"`

	path string
	// loaded is the file as this process read it: Save applies only what changed since,
	// onto what is on disk then, so that two processes saving at once lose neither's change.
	loaded *Config
}

// InstanceConfig is one registered instance. "local" is always the standalone instance.
type InstanceConfig struct {
	URL            string `yaml:"url,omitempty"`
	Token          string `yaml:"token,omitempty"`
	User           string `yaml:"user,omitempty"`
	CurrentProject string `yaml:"current_project,omitempty"`
	// LedgerKey is the server's checkpoint key, pinned at the first contact; Checkpoint
	// the last signed checkpoint this client saw of it (each next one must extend it).
	LedgerKey  string `yaml:"ledger_key,omitempty"`
	Checkpoint string `yaml:"checkpoint,omitempty"`
	// Witnesses are the witness keys this client trusts for the server; MinCosignatures
	// how many of them must vouch for the history it shows (0: no requirement).
	Witnesses       []string `yaml:"witnesses,omitempty"`
	MinCosignatures int      `yaml:"min_cosignatures,omitempty"`
}

// DefaultConfigPath is $SWCLI_CONFIG or ~/.config/swcli/config.yaml.
func DefaultConfigPath() string {
	if p := os.Getenv("SWCLI_CONFIG"); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "swcli", "config.yaml")
}

// LoadConfig reads the config at path; a missing file is an empty config.
func LoadConfig(path string) (*Config, error) {
	c := &Config{path: path}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if err == nil {
		if err := yaml.Unmarshal(b, c); err != nil {
			return nil, Errorf(KindInvalid, "fix or delete the file", "config %s: %v", path, err)
		}
	}
	if c.Instances == nil {
		c.Instances = map[string]*InstanceConfig{}
	}
	if c.Instances["local"] == nil {
		c.Instances["local"] = &InstanceConfig{}
	}
	if c.CurrentInstance == "" {
		c.CurrentInstance = "local"
	}
	c.loaded = c.clone()
	return c, nil
}

// clone copies the config's fields (not its path or loaded state).
func (c *Config) clone() *Config {
	d := &Config{CurrentInstance: c.CurrentInstance, Instances: map[string]*InstanceConfig{}}
	for a, ic := range c.Instances {
		if ic != nil {
			cp := *ic
			cp.Witnesses = slices.Clone(ic.Witnesses)
			d.Instances[a] = &cp
		}
	}
	return d
}

// mergeInto applies to disk what changed in c since it was loaded: the selected
// instance, instances added or removed, and each field of an instance on its own.
func (c *Config) mergeInto(disk *Config) {
	was := c.loaded
	if was == nil {
		was = &Config{Instances: map[string]*InstanceConfig{}}
	}
	if c.CurrentInstance != was.CurrentInstance {
		disk.CurrentInstance = c.CurrentInstance
	}
	for a, before := range was.Instances {
		if c.Instances[a] == nil {
			delete(disk.Instances, a)
			if disk.CurrentInstance == a {
				disk.CurrentInstance = "local"
			}
			continue
		}
		if disk.Instances[a] == nil {
			continue // removed by another process meanwhile: its removal stands
		}
		now, there := reflect.ValueOf(c.Instances[a]).Elem(), reflect.ValueOf(disk.Instances[a]).Elem()
		old := reflect.ValueOf(before).Elem()
		for i := range now.NumField() {
			if !reflect.DeepEqual(now.Field(i).Interface(), old.Field(i).Interface()) {
				there.Field(i).Set(now.Field(i))
			}
		}
	}
	for a, ic := range c.Instances {
		if was.Instances[a] == nil && ic != nil {
			cp := *ic
			disk.Instances[a] = &cp
		}
	}
}

// Save writes the config atomically with mode 0600. Under a lock beside the file it reads
// the file again and applies to it only what this process changed since it loaded it, so
// that concurrent commands (two copies remembering a checkpoint, a login meanwhile) keep
// each other's changes.
func (c *Config) Save() error {
	if c.path == "" {
		return errors.New("no config path")
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	lock, err := flock.Acquire(context.Background(), c.path+".lock", flock.Options{Timeout: 30 * time.Second})
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	defer lock.Release()
	disk, err := LoadConfig(c.path)
	if err != nil {
		return err
	}
	c.mergeInto(disk)
	b, err := yaml.Marshal(disk)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(c.path, b, 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	c.CurrentInstance, c.Instances = disk.CurrentInstance, disk.Instances
	c.loaded = disk.clone()
	return nil
}

// Project returns the selected project of an instance: "self" by default on the standalone
// instance; on a cloud instance, the one chosen at login or with 'project select' ("" if
// none).
func (c *Config) Project(instance string) string {
	if ic := c.Instances[instance]; ic != nil && ic.CurrentProject != "" {
		return ic.CurrentProject
	}
	if instance == "local" {
		return "self"
	}
	return ""
}

// AliasFor returns the alias logged in to url ("" if none); when several are, the first
// by name, so that the same config always gives the same answer.
func (c *Config) AliasFor(url string) string {
	var found []string
	for a, ic := range c.Instances {
		if ic != nil && ic.URL == url {
			found = append(found, a)
		}
	}
	if len(found) == 0 {
		return ""
	}
	slices.Sort(found)
	return found[0]
}

// AliasOf resolves an instance reference to a registered alias ("local" included): none
// is the selected instance, a URL the alias logged in to it.
func (c *Config) AliasOf(r InstanceRef) (string, error) {
	alias := r.Alias
	switch {
	case r.URL != "":
		if alias = c.AliasFor(r.URL); alias == "" {
			return "", Errorf(KindAuth, "swcli instance login "+r.URL+" --alias NAME --token-stdin", "not logged in to %s", r.URL)
		}
	case alias == "":
		alias = c.CurrentInstance
	}
	if c.Instances[alias] == nil {
		return "", Errorf(KindUsage, "'swcli instance list' shows the instances; 'swcli instance login' adds one", "unknown instance %q", alias)
	}
	return alias, nil
}

// OpenEndpoint opens the instance a project URI names: the standalone one (through
// openLocal), or a server the user logged in to. The project defaults to the instance's
// selected one.
func OpenEndpoint(cfg *Config, u ProjectURI, openLocal func() (*Instance, error)) (api.Endpoint, string, error) {
	if u.Instance.IsLocal(cfg.CurrentInstance) {
		in, err := openLocal()
		if err != nil {
			return nil, "", err
		}
		p := u.Project
		if p == "" {
			p = cfg.Project("local")
		}
		return LocalEndpoint{In: in}, p, nil
	}
	alias, err := cfg.AliasOf(u.Instance)
	if err != nil {
		return nil, "", err
	}
	ic := cfg.Instances[alias]
	if ic.URL == "" {
		return nil, "", Errorf(KindUsage, "'swcli instance list' shows the instances; 'swcli instance login' adds one", "unknown instance %q", alias)
	}
	p := u.Project
	if p == "" {
		p = cfg.Project(alias)
	}
	if p == "" {
		return nil, "", Errorf(KindUsage, "swcli project select cloud://"+alias+"/project/NAME ('swcli project list "+alias+"' shows them)",
			"no project selected on cloud://%s", alias)
	}
	return client.NewRemote(alias, ic.URL, ic.Token), p, nil
}
