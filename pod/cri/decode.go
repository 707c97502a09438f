// Package cri reads the fields of CRI's PodSandboxConfig the shim uses straight off
// the wire, and writes the pod's verbose status in the JSON form CRI keeps.
package cri

import (
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/encoding/protowire"
)

// The fields of CRI's runtime.v1.PodSandboxConfig (k8s.io/cri-api,
// api.proto) the pause task follows or checks, read straight off the wire.
// Decoding through the generated types would make every pod's shim build the
// descriptors of the whole CRI API, memory every pod's shim would pay for a
// handful of fields, and every start of the binary would register them
// (docs/architecture.md, "Libraries weighed against our own code").
// FuzzDecodeCRIPodConfig holds this decoder equal to the generated one.
const (
	podConfigMetadata    = 1 // PodSandboxMetadata
	podConfigHostname    = 2 // string
	podConfigLogDir      = 3 // string
	podConfigDNS         = 4 // DNSConfig
	podConfigLabels      = 6 // map<string, string>
	podConfigAnnotations = 7 // map<string, string>
	podConfigLinux       = 8 // LinuxPodSandboxConfig

	metadataName      = 1 // string
	metadataUID       = 2 // string
	metadataNamespace = 3 // string
	metadataAttempt   = 4 // uint32

	dnsServers  = 1 // repeated string
	dnsSearches = 2 // repeated string
	dnsOptions  = 3 // repeated string

	linuxCgroupParent    = 1 // string
	linuxSecurityContext = 2 // LinuxSandboxSecurityContext
	linuxSysctls         = 3 // map<string, string>

	securityNamespaceOptions         = 1  // NamespaceOption
	securitySELinux                  = 2  // SELinuxOption
	securityRunAsUser                = 3  // Int64Value
	securityReadonlyRootfs           = 4  // bool
	securitySupplementalGroups       = 5  // repeated int64
	securityPrivileged               = 6  // bool
	securitySeccompProfilePath       = 7  // string (deprecated)
	securityRunAsGroup               = 8  // Int64Value
	securitySeccomp                  = 9  // SecurityProfile
	securityAppArmor                 = 10 // SecurityProfile
	securitySupplementalGroupsPolicy = 11 // SupplementalGroupsPolicy

	int64Value = 1 // int64

	selinuxUser  = 1 // string
	selinuxRole  = 2
	selinuxType  = 3
	selinuxLevel = 4

	profileType         = 1 // ProfileType
	profileLocalhostRef = 2 // string

	namespaceNetwork = 1 // NamespaceMode
	namespacePID     = 2
	namespaceIPC     = 3
	namespaceUserns  = 5 // UserNamespace

	usernsMode = 1 // NamespaceMode
	usernsUIDs = 2 // repeated IDMapping
	usernsGIDs = 3

	mappingHostID      = 1
	mappingContainerID = 2
	mappingLength      = 3

	mapKey   = 1
	mapValue = 2
)

var errMalformed = errors.New("malformed protobuf")

// Decode reads a serialized runtime.v1.PodSandboxConfig.
func Decode(b []byte) (*PodConfig, error) {
	c := &PodConfig{}
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		switch {
		case num == podConfigMetadata && typ == protowire.BytesType:
			return fields(v, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
				switch {
				case num == metadataName && typ == protowire.BytesType:
					c.Name = string(v)
				case num == metadataUID && typ == protowire.BytesType:
					c.UID = string(v)
				case num == metadataNamespace && typ == protowire.BytesType:
					c.Namespace = string(v)
				case num == metadataAttempt && typ == protowire.VarintType:
					c.Attempt = uint64(uint32(n))
				}
				return nil
			})
		case num == podConfigHostname && typ == protowire.BytesType:
			c.Hostname = string(v)
		case num == podConfigLogDir && typ == protowire.BytesType:
			c.LogDirectory = string(v)
		case num == podConfigLabels && typ == protowire.BytesType:
			return mapEntry(v, &c.Labels)
		case num == podConfigAnnotations && typ == protowire.BytesType:
			return mapEntry(v, &c.Annotations)
		case num == podConfigDNS && typ == protowire.BytesType:
			if c.DNS == nil { // a repeated message field merges
				c.DNS = &DNSConfig{}
			}
			return fields(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if typ != protowire.BytesType {
					return nil
				}
				switch num {
				case dnsServers:
					c.DNS.Servers = append(c.DNS.Servers, string(v))
				case dnsSearches:
					c.DNS.Searches = append(c.DNS.Searches, string(v))
				case dnsOptions:
					c.DNS.Options = append(c.DNS.Options, string(v))
				}
				return nil
			})
		case num == podConfigLinux && typ == protowire.BytesType:
			return c.decodeLinux(v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("malformed sandbox options: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return c, nil
}

func (c *PodConfig) decodeLinux(b []byte) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case linuxCgroupParent:
			c.CgroupParent = string(v)
		case linuxSysctls:
			return mapEntry(v, &c.Sysctls)
		case linuxSecurityContext:
			return c.decodeSecurity(v)
		}
		return nil
	})
}

// enum is a varint as protobuf reads an enum: its low 32 bits, signed.
func enum(n uint64) uint64 { return uint64(int32(n)) }

func (c *PodConfig) decodeSecurity(b []byte) error {
	s := &c.Security
	return fields(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		if typ == protowire.VarintType {
			switch num {
			case securityReadonlyRootfs:
				s.ReadonlyRootfs = n != 0
			case securityPrivileged:
				s.Privileged = n != 0
			case securitySupplementalGroups:
				s.SupplementalGroups = append(s.SupplementalGroups, int64(n))
			case securitySupplementalGroupsPolicy:
				s.SupplementalGroupsPolicy = enum(n)
			}
			return nil
		}
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case securityNamespaceOptions:
			return c.decodeNamespaces(v)
		case securitySELinux:
			if s.SELinux == nil { // a message field seen again merges
				s.SELinux = &SELinuxOption{}
			}
			return fields(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if typ != protowire.BytesType {
					return nil
				}
				switch num {
				case selinuxUser:
					s.SELinux.User = string(v)
				case selinuxRole:
					s.SELinux.Role = string(v)
				case selinuxType:
					s.SELinux.Type = string(v)
				case selinuxLevel:
					s.SELinux.Level = string(v)
				}
				return nil
			})
		case securityRunAsUser:
			return decodeInt64Value(v, &s.RunAsUser)
		case securityRunAsGroup:
			return decodeInt64Value(v, &s.RunAsGroup)
		case securitySupplementalGroups: // packed
			for len(v) > 0 {
				g, l := protowire.ConsumeVarint(v)
				if l < 0 {
					return errMalformed
				}
				s.SupplementalGroups = append(s.SupplementalGroups, int64(g))
				v = v[l:]
			}
		case securitySeccompProfilePath:
			s.SeccompProfilePath = string(v)
		case securitySeccomp:
			return decodeProfile(v, &s.Seccomp)
		case securityAppArmor:
			return decodeProfile(v, &s.AppArmor)
		}
		return nil
	})
}

func (c *PodConfig) decodeNamespaces(b []byte) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		switch {
		case num == namespaceUserns && typ == protowire.BytesType:
			return c.decodeUserns(v)
		case typ != protowire.VarintType:
		case num == namespaceNetwork:
			c.Network = enum(n)
		case num == namespacePID:
			c.PID = enum(n)
		case num == namespaceIPC:
			c.IPC = enum(n)
		}
		return nil
	})
}

// decodeInt64Value reads an Int64Value into **p, made if nil.
func decodeInt64Value(b []byte, p **int64) error {
	if *p == nil {
		*p = new(int64)
	}
	return fields(b, func(num protowire.Number, typ protowire.Type, _ []byte, n uint64) error {
		if num == int64Value && typ == protowire.VarintType {
			**p = int64(n)
		}
		return nil
	})
}

// decodeProfile reads a SecurityProfile into **p, made if nil.
func decodeProfile(b []byte, p **Profile) error {
	if *p == nil {
		*p = &Profile{}
	}
	sp := *p
	return fields(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		switch {
		case num == profileType && typ == protowire.VarintType:
			sp.Type = enum(n)
		case num == profileLocalhostRef && typ == protowire.BytesType:
			sp.LocalhostRef = string(v)
		}
		return nil
	})
}

// mapEntry adds one entry of a map<string, string> field to *m.
func mapEntry(b []byte, m *map[string]string) error {
	var key, value string
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == mapKey && typ == protowire.BytesType:
			key = string(v)
		case num == mapValue && typ == protowire.BytesType:
			value = string(v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if *m == nil {
		*m = map[string]string{}
	}
	(*m)[key] = value
	return nil
}

func (c *PodConfig) decodeUserns(b []byte) error {
	if c.Userns == nil {
		c.Userns = &Userns{}
	}
	u := c.Userns
	return fields(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		switch {
		case num == usernsMode && typ == protowire.VarintType:
			u.Mode = enum(n)
		case (num == usernsUIDs || num == usernsGIDs) && typ == protowire.BytesType:
			var m IDMapping
			err := fields(v, func(num protowire.Number, typ protowire.Type, _ []byte, n uint64) error {
				if typ != protowire.VarintType {
					return nil
				}
				switch n = uint64(uint32(n)); num { // uint32 fields
				case mappingHostID:
					m.HostID = n
				case mappingContainerID:
					m.ContainerID = n
				case mappingLength:
					m.Length = n
				}
				return nil
			})
			if err != nil {
				return err
			}
			if num == usernsUIDs {
				u.UIDs = append(u.UIDs, m)
			} else {
				u.GIDs = append(u.GIDs, m)
			}
		}
		return nil
	})
}

// check answers a pod's user namespace request: the host's (NODE, or none),
// or one of the pod's own (POD) with one mapping each for UIDs and GIDs that
// maps container ID 0, as CRI requires of runc.
func (u *Userns) Check() error {
	if u == nil || u.Mode == ModeNode {
		return nil
	}
	if u.Mode != ModePod {
		return fmt.Errorf("user namespace mode %d is not supported for a pod, only POD or NODE: %w", u.Mode, errdefs.ErrInvalidArgument)
	}
	for _, m := range [][]IDMapping{u.UIDs, u.GIDs} {
		if len(m) != 1 {
			return fmt.Errorf("user namespace: exactly one ID mapping line is supported, got %d: %w", len(m), errdefs.ErrInvalidArgument)
		}
		if m[0].Length < 1 || m[0].ContainerID != 0 {
			return fmt.Errorf("user namespace: the mapping %+v must map container ID 0: %w", m[0], errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// fields calls fn for each field of a message: v for length-delimited
// fields, n for varints; other wire types are skipped.
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error) error {
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return errMalformed
		}
		b = b[l:]
		var (
			v []byte
			n uint64
		)
		switch typ {
		case protowire.BytesType:
			v, l = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			n, l = protowire.ConsumeVarint(b)
		default:
			l = protowire.ConsumeFieldValue(num, typ, b)
		}
		if l < 0 {
			return errMalformed
		}
		b = b[l:]
		if err := fn(num, typ, v, n); err != nil {
			return err
		}
	}
	return nil
}
