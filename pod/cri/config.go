package cri

// Values of CRI's NamespaceMode; CONTAINER (1) and TARGET (3) need nothing
// of the pod, but for a user namespace, where they are refused.
const (
	ModePod  = 0
	ModeNode = 2
)

// PodConfig is what the shim reads of a PodSandboxConfig.
type PodConfig struct {
	// Name and Namespace are the Kubernetes pod's, for the logs.
	Name, Namespace string
	UID             string
	Attempt         uint64
	Hostname        string
	LogDirectory    string
	Labels          map[string]string
	Annotations     map[string]string
	DNS             *DNSConfig
	CgroupParent    string
	Sysctls         map[string]string
	Network         uint64 // NamespaceMode
	PID             uint64
	IPC             uint64
	// Userns is the pod's user namespace request; nil: none (the host's).
	Userns *Userns
	// Security is the rest of the sandbox's security context.
	Security Security
}

// Security is CRI's LinuxSandboxSecurityContext but its namespace
// options. checkSecurity says what becomes of each field.
type Security struct {
	SELinux                  *SELinuxOption
	RunAsUser, RunAsGroup    *int64
	ReadonlyRootfs           bool
	SupplementalGroups       []int64
	SupplementalGroupsPolicy uint64
	Privileged               bool
	Seccomp, AppArmor        *Profile
	SeccompProfilePath       string
}

type SELinuxOption struct{ User, Role, Type, Level string }

type Profile struct {
	Type         uint64 // ProfileType
	LocalhostRef string
}

type Userns struct {
	Mode       uint64
	UIDs, GIDs []IDMapping
}

type IDMapping struct{ HostID, ContainerID, Length uint64 }

type DNSConfig struct {
	Servers, Searches, Options []string
}
