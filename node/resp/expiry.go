package resp

// Expiry is not in the node yet (it is being added in parallel). These
// commands answer a clear error until then; this is the place to map them
// onto it (and SET's EX/PX/EXAT/PXAT/KEEPTTL options, refused in cmdSet).
var expiryCommands = []string{"expire", "pexpire", "expireat", "pexpireat", "ttl", "pttl",
	"persist", "expiretime", "pexpiretime", "setex", "psetex", "getex"}

func errNoExpiry(what string) string {
	return "ERR " + what + " is not supported: keys cannot expire in this version of shoal"
}

func cmdNoExpiry(x *exec, a [][]byte) {
	x.o.err(errNoExpiry(string(a[0])))
}
