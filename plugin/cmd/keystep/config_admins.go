package main

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/keystep/keystep/provider"
)

// AdminConfig is one named admin of the admin API: its token is in
// TokenFile (mode 0600, at least provider.MinAdminTokenLen bytes). The audit
// log names what it does "admin:<name>".
type AdminConfig struct {
	Name      string `yaml:"name"`
	TokenFile string `yaml:"token_file"`
}

// adminName is what an admin's name may be (provider's own rule).
var adminName = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,64}$`)

// adminsValue reads the admins list: each item a mapping of name and
// token_file, nothing else.
func adminsValue(p *[]AdminConfig) setter {
	return func(n *yaml.Node) error {
		if n.Kind != yaml.SequenceNode {
			return errors.New("must be a list of {name, token_file}")
		}
		out := []AdminConfig{}
		for i, item := range n.Content {
			item = resolve(item)
			if item.Kind != yaml.MappingNode {
				return fmt.Errorf("item %d must be a mapping with name and token_file", i+1)
			}
			var a AdminConfig
			seen := map[string]bool{}
			for j := 0; j+1 < len(item.Content); j += 2 {
				k := resolve(item.Content[j]).Value
				if seen[k] {
					return fmt.Errorf("item %d: %s is given twice", i+1, k)
				}
				seen[k] = true
				v, err := scalar(resolve(item.Content[j+1]))
				if err != nil {
					return fmt.Errorf("item %d: %s: %w", i+1, k, err)
				}
				switch k {
				case "name":
					a.Name = v
				case "token_file":
					a.TokenFile = v
				default:
					return fmt.Errorf("item %d: unknown key %s (name, token_file)", i+1, k)
				}
			}
			out = append(out, a)
		}
		*p = out
		return nil
	}
}

// prefixesValue reads a list of CIDR prefixes; a bare address is its own
// /32 or /128.
func prefixesValue(p *[]netip.Prefix) setter {
	return func(n *yaml.Node) error {
		var list []string
		if err := listValue(&list)(n); err != nil {
			return err
		}
		out := []netip.Prefix{}
		for _, s := range list {
			pfx, err := parsePrefix(s)
			if err != nil {
				return err
			}
			out = append(out, pfx)
		}
		*p = out
		return nil
	}
}

// parsePrefix reads a CIDR prefix ("10.0.0.0/8", "::1/128") or a bare
// address.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix like 10.0.0.0/8 or 2001:db8::/32", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or a CIDR prefix like 10.0.0.0/8", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// validateAdmins checks the admins list: good, distinct names (not the
// default admin's), each with a token file.
func (c *Config) validateAdmins() []error {
	var errs []error
	seen := map[string]bool{}
	for i, a := range c.Admins {
		switch {
		case !adminName.MatchString(a.Name):
			errs = append(errs, c.keyError("admins", "item %d: name must be 1 to 64 letters, digits, '.', '_', '-' or '@', not %q", i+1, a.Name))
		case a.Name == provider.DefaultAdminName:
			errs = append(errs, c.keyError("admins", "item %d: the name %q is the default admin's, whose token is <data_dir>/%s; choose another", i+1, a.Name, adminTokenFile))
		case seen[a.Name]:
			errs = append(errs, c.keyError("admins", "item %d: admin %q is listed twice", i+1, a.Name))
		}
		seen[a.Name] = true
		if a.TokenFile == "" {
			errs = append(errs, c.keyError("admins", "item %d (%s): token_file is required", i+1, a.Name))
		}
	}
	return errs
}

// adminTokens reads each named admin's token file (which must be 0600 and
// long enough) and adds the default admin's token.
func (c *Config) adminTokens(defaultToken string) (map[string]string, error) {
	tokens := map[string]string{provider.DefaultAdminName: defaultToken}
	for _, a := range c.Admins {
		t, err := readTokenFile(a.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("admin %s: %w", a.Name, err)
		}
		tokens[a.Name] = t
	}
	return tokens, nil
}
