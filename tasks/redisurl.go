package tasks

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Default ports: a port left out of a URL is one of these.
const (
	defaultRedisPort    = "6379"
	defaultSentinelPort = "26379"
)

// ParseRedisURL parses a Redis URL into asynq's connection options, so that
// the user name, password, database, TLS and sentinel credentials all reach
// the connection:
//
//	redis://[[user]:password@]host[:port][/db]
//	rediss://[[user]:password@]host[:port][/db]          TLS; the name checked is host
//	redis-socket://[[user]:password@]/path/to/socket[?db=N]
//	redis-sentinel://[[sentinel_user]:sentinel_password@]host[:port][,host[:port]...][/db]?master=NAME[&username=USER][&password=PASSWORD]
//	rediss-sentinel://...                                 the same over TLS, to the sentinels and the servers
//	redis-cluster://[[user]:password@]host[:port][,host[:port]...]
//	rediss-cluster://...                                  the same over TLS
//
// In the sentinel forms the user info authenticates to the sentinels, and
// username and password to the master and replicas they point at. Over TLS
// with several hosts, each connection checks the name of the host it dials.
// User names, passwords and parameter values are percent-decoded (%40 for
// "@", %2F for "/", %23 for "#"; "+" is a plus). A port left out is 6379
// (26379 for a sentinel). Unknown query parameters are rejected. Its
// errors never include a password.
func ParseRedisURL(raw string) (asynq.RedisConnOpt, error) {
	u, err := splitRedisURL(raw)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	opt, err := u.connOpt()
	if err != nil {
		return nil, fmt.Errorf("redis url %s: %w", u.redacted(), err)
	}
	return opt, nil
}

// RedactURL renders a Redis URL with its passwords hidden: the one in the
// user info and every query value except master, db and username. An
// unparsable URL renders as "(unparsable)".
func RedactURL(raw string) string {
	u, err := splitRedisURL(raw)
	if err != nil {
		return "(unparsable)"
	}
	return u.redacted()
}

// redisURL is a Redis URL cut into its parts, before any meaning is given
// to them: several hosts are allowed, and the query keeps its order.
type redisURL struct {
	scheme      string
	user        string
	password    string
	hasUser     bool // user info present
	hasPassword bool
	hosts       string // as written: host[:port][,host[:port]...]
	path        string // percent-decoded
	query       []queryParam
}

type queryParam struct{ key, value string }

// splitRedisURL cuts raw into a redisURL. It never quotes raw in its
// errors: a mistyped URL may hold a password anywhere.
func splitRedisURL(raw string) (*redisURL, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || scheme == "" {
		return nil, errors.New("want scheme://..., for example redis://host:6379/0")
	}
	if strings.Contains(rest, "#") {
		return nil, errors.New(`"#" must be percent-encoded as %23`)
	}
	if !safeText(scheme, "+") {
		return nil, errors.New("bad scheme: want redis://, rediss://, redis-socket://, redis-sentinel:// or redis-cluster://")
	}
	u := &redisURL{scheme: strings.ToLower(scheme)}
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	rawPath, rawQuery, _ := strings.Cut(tail, "?")
	if strings.Contains(rawPath, "@") || passwordCutByQuery(authority, rawQuery) {
		// A "/" or "?" in a password cut the user info short.
		return nil, errors.New(`"/" and "?" in a user name or password must be percent-encoded (%2F, %3F)`)
	}
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		info := authority[:i]
		u.hosts = authority[i+1:]
		u.hasUser = true
		user, pass, hasPass := strings.Cut(info, ":")
		var err error
		if u.user, err = url.PathUnescape(user); err != nil {
			return nil, errors.New("bad percent-encoding in the user name")
		}
		if u.password, err = url.PathUnescape(pass); err != nil {
			return nil, errors.New("bad percent-encoding in the password")
		}
		u.hasPassword = hasPass
	} else {
		u.hosts = authority
	}
	if strings.IndexFunc(u.hosts, func(r rune) bool { return !hostChar(r) }) >= 0 {
		// Not a host list: perhaps a password without its "@" or "?".
		return nil, errors.New("the host list may hold letters, digits and . - _ : [ ] , % only")
	}
	var err error
	if u.path, err = url.PathUnescape(rawPath); err != nil {
		return nil, errors.New("bad percent-encoding in the path")
	}
	for kv := range strings.SplitSeq(rawQuery, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		key, err := url.PathUnescape(k)
		if err != nil {
			return nil, errors.New("bad percent-encoding in a query parameter name")
		}
		value, err := url.PathUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("bad percent-encoding in query parameter %s", redactKey(key))
		}
		u.query = append(u.query, queryParam{key, value})
	}
	return u, nil
}

// redactKey names a query parameter in an error: its name, unless the
// name looks like it could be a secret pasted in the wrong place.
func redactKey(key string) string {
	if len(key) > 32 || !safeText(key, "") {
		return "(name hidden)"
	}
	return strconv.Quote(key)
}

// redacted renders u with the password (or a user name given without one)
// and the values of every query parameter other than master and db
// replaced by "xxxxx".
func (u *redisURL) redacted() string {
	var b strings.Builder
	b.WriteString(u.scheme + "://")
	if u.hasUser {
		switch {
		case u.hasPassword:
			b.WriteString(url.PathEscape(u.user) + ":xxxxx")
		case u.user != "":
			// A user without a password is as likely a password written
			// without its colon (redis://PASSWORD@host): hidden too.
			b.WriteString("xxxxx")
		}
		b.WriteString("@")
	}
	if hosts := strings.Split(u.hosts, ","); slices.IndexFunc(hosts, func(h string) bool { return !plainAddr(h) }) >= 0 {
		b.WriteString("(hosts hidden)")
	} else {
		b.WriteString(u.hosts)
	}
	if safeText(u.path, "/") {
		b.WriteString(u.path)
	} else {
		b.WriteString("/(path hidden)")
	}
	for i, p := range u.query {
		if i == 0 {
			b.WriteString("?")
		} else {
			b.WriteString("&")
		}
		if safeText(p.key, "") {
			b.WriteString(p.key + "=")
		} else {
			b.WriteString("(hidden)=")
		}
		switch p.key {
		case "master", "db", "username":
			if safeText(p.value, "") {
				b.WriteString(p.value)
				break
			}
			fallthrough
		default:
			b.WriteString("xxxxx")
		}
	}
	return b.String()
}

func hostChar(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune(".-_:[],%", r)
}

// safeText reports whether s holds only letters, digits, ". - _" and the
// extra characters: text that can be shown, because it cannot hold a
// password pasted in the wrong place (which would hold "=", "&", "@" ...).
func safeText(s, extra string) bool {
	return strings.IndexFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("._-"+extra, r))
	}) < 0
}

func (u *redisURL) connOpt() (asynq.RedisConnOpt, error) {
	switch u.scheme {
	case "redis", "rediss":
		return u.clientOpt()
	case "redis-socket":
		return u.socketOpt()
	case "redis-sentinel", "rediss-sentinel":
		return u.failoverOpt()
	case "redis-cluster", "rediss-cluster":
		return u.clusterOpt()
	}
	return nil, fmt.Errorf("unknown scheme %s: want redis, rediss, redis-socket, redis-sentinel, rediss-sentinel, redis-cluster or rediss-cluster", strconv.Quote(u.scheme))
}

func (u *redisURL) tls() bool { return strings.HasPrefix(u.scheme, "rediss") }

func (u *redisURL) clientOpt() (asynq.RedisConnOpt, error) {
	if err := u.params(nil); err != nil {
		return nil, err
	}
	addrs, err := u.addrs(defaultRedisPort)
	if err != nil {
		return nil, err
	}
	if len(addrs) != 1 {
		return nil, fmt.Errorf("%s:// takes one host; use redis-cluster:// or redis-sentinel:// for several", u.scheme)
	}
	db, err := u.pathDB()
	if err != nil {
		return nil, err
	}
	opt := asynq.RedisClientOpt{Addr: addrs[0], Username: u.user, Password: u.password, DB: db}
	if u.tls() {
		host, _, _ := net.SplitHostPort(addrs[0])
		opt.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	return opt, nil
}

func (u *redisURL) socketOpt() (asynq.RedisConnOpt, error) {
	if u.hosts != "" {
		return nil, errors.New("redis-socket:// takes a path, not a host: redis-socket:///path/to/redis.sock")
	}
	if u.path == "" || u.path == "/" {
		return nil, errors.New("redis-socket:// needs the socket's path: redis-socket:///path/to/redis.sock")
	}
	q := map[string]string{}
	if err := u.params(q, "db"); err != nil {
		return nil, err
	}
	db, err := parseDB(q["db"])
	if err != nil {
		return nil, err
	}
	return asynq.RedisClientOpt{Network: "unix", Addr: u.path, Username: u.user, Password: u.password, DB: db}, nil
}

func (u *redisURL) failoverOpt() (asynq.RedisConnOpt, error) {
	q := map[string]string{}
	if err := u.params(q, "master", "username", "password"); err != nil {
		return nil, err
	}
	if q["master"] == "" {
		return nil, fmt.Errorf("%s:// needs the master's name: ?master=NAME", u.scheme)
	}
	addrs, err := u.addrs(defaultSentinelPort)
	if err != nil {
		return nil, err
	}
	db, err := u.pathDB()
	if err != nil {
		return nil, err
	}
	opt := asynq.RedisFailoverClientOpt{
		MasterName:       q["master"],
		SentinelAddrs:    addrs,
		SentinelUsername: u.user,
		SentinelPassword: u.password,
		Username:         q["username"],
		Password:         q["password"],
		DB:               db,
	}
	if u.tls() {
		// No ServerName: each connection checks the host it dials.
		opt.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return opt, nil
}

func (u *redisURL) clusterOpt() (asynq.RedisConnOpt, error) {
	if err := u.params(nil); err != nil {
		return nil, err
	}
	addrs, err := u.addrs(defaultRedisPort)
	if err != nil {
		return nil, err
	}
	if db, err := u.pathDB(); err != nil || db != 0 {
		return nil, errors.New("a Redis Cluster has database 0 only: leave the path empty or /0")
	}
	opt := asynq.RedisClusterClientOpt{Addrs: addrs, Username: u.user, Password: u.password}
	if u.tls() {
		opt.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return ClusterOpt{opt}, nil
}

// params checks u's query against the allowed keys and stores the values
// in into.
func (u *redisURL) params(into map[string]string, allowed ...string) error {
	for _, p := range u.query {
		if !slices.Contains(allowed, p.key) {
			if len(allowed) == 0 {
				return fmt.Errorf("%s:// takes no query parameters, got %s", u.scheme, redactKey(p.key))
			}
			return fmt.Errorf("unknown query parameter %s (want %s)", redactKey(p.key), strings.Join(allowed, ", "))
		}
		if _, dup := into[p.key]; dup {
			return fmt.Errorf("query parameter %s given twice", redactKey(p.key))
		}
		into[p.key] = p.value
	}
	return nil
}

// addrs splits u's host list into host:port addresses.
func (u *redisURL) addrs(defaultPort string) ([]string, error) {
	if u.hosts == "" {
		return nil, errors.New("no host")
	}
	var out []string
	for h := range strings.SplitSeq(u.hosts, ",") {
		addr, err := hostPort(h, defaultPort)
		if err != nil {
			return nil, err
		}
		out = append(out, addr)
	}
	return out, nil
}

// hostPort checks one host[:port] ([v6]:port for IPv6) and adds the
// default port when it is missing.
func hostPort(h, defaultPort string) (string, error) {
	host, port := h, defaultPort
	if rest, ok := strings.CutPrefix(h, "["); ok {
		end := strings.Index(rest, "]")
		if end < 0 {
			return "", fmt.Errorf("bad address %s: no closing bracket", showAddr(h))
		}
		host = rest[:end]
		if after := rest[end+1:]; after != "" {
			p, ok := strings.CutPrefix(after, ":")
			if !ok {
				return "", fmt.Errorf("bad address %s: want [v6]:port", showAddr(h))
			}
			port = p
		}
	} else if strings.Count(h, ":") > 1 {
		return "", fmt.Errorf("bad address %s: write an IPv6 address in brackets, [v6]:port", showAddr(h))
	} else if i := strings.Index(h, ":"); i >= 0 {
		host, port = h[:i], h[i+1:]
	}
	if host == "" || strings.ContainsAny(host, " /?@[]") {
		return "", fmt.Errorf("bad host in %s", showAddr(h))
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("bad port in %s", showAddr(h))
	}
	return net.JoinHostPort(host, port), nil
}

// passwordCutByQuery reports whether a "?" in a password seems to have cut
// the user info short: the authority has no "@" but a ":" followed by more
// than a port (user:pass-start), and the query holds an "@" (rest@host).
// An "@" in a query value (password=p@ss, username=me@corp) is fine.
func passwordCutByQuery(authority, rawQuery string) bool {
	if strings.Contains(authority, "@") || !strings.Contains(rawQuery, "@") {
		return false
	}
	_, after, ok := strings.Cut(authority, ":")
	return ok && strings.IndexFunc(after, func(r rune) bool { return r < '0' || r > '9' }) >= 0
}

// showAddr quotes h for an error when it looks like host[:port], and
// otherwise does not show it: a password whose "@host" was left out would
// stand where the host does.
func showAddr(h string) string {
	if plainAddr(h) {
		return strconv.Quote(h)
	}
	return "(not shown: it is no host[:port] and may hold a password)"
}

// plainAddr reports whether h is made of what a host[:port] or [v6]:port
// is made of, with a port of digits only.
func plainAddr(h string) bool {
	host, port := h, ""
	if i := strings.LastIndex(h, "]"); strings.HasPrefix(h, "[") && i > 0 {
		host, port = h[1:i], strings.TrimPrefix(h[i+1:], ":")
		if strings.IndexFunc(host, func(r rune) bool { return !(r == ':' || r == '.' || r == '%' || isAlnum(r)) }) >= 0 {
			return false
		}
	} else {
		if i := strings.LastIndex(h, ":"); i >= 0 {
			host, port = h[:i], h[i+1:]
		}
		if strings.IndexFunc(host, func(r rune) bool { return !(r == '.' || r == '-' || r == '_' || isAlnum(r)) }) >= 0 {
			return false
		}
	}
	return strings.IndexFunc(port, func(r rune) bool { return r < '0' || r > '9' }) < 0
}

func isAlnum(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
}

// pathDB reads the database number from the path: "", "/" or "/N".
func (u *redisURL) pathDB() (int, error) {
	p := strings.TrimPrefix(u.path, "/")
	if strings.Contains(p, "/") {
		return 0, errors.New("the path is the database number only: /N")
	}
	return parseDB(p)
}

func parseDB(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		if !safeText(s, "") {
			return 0, errors.New("database: want a number, 0 or more")
		}
		return 0, fmt.Errorf("database %s: want a number, 0 or more", strconv.Quote(s))
	}
	return n, nil
}

// PermanentRedisError reports whether err, met while connecting to Redis
// or running a command, is one that waiting will not heal: the server
// refuses the credentials (WRONGPASS, NOAUTH, a password sent to a server
// that has none), the user may not run the command (NOPERM), the database
// does not exist, no sentinel knows the master's name, a cluster URL names
// a server not in cluster mode, or the server's TLS certificate does not
// verify. Everything else (connection refused, timeouts, LOADING,
// MASTERDOWN, CLUSTERDOWN, a full server, sentinels unreachable) is
// transient: Redis may come back.
func PermanentRedisError(err error) bool {
	if err == nil {
		return false
	}
	if redis.IsAuthError(err) || redis.IsPermissionError(err) {
		return true
	}
	var certErr *tls.CertificateVerificationError
	var hostErr x509.HostnameError
	var authorityErr x509.UnknownAuthorityError
	var invalidErr x509.CertificateInvalidError
	var recordErr tls.RecordHeaderError
	if errors.As(err, &certErr) || errors.As(err, &hostErr) || errors.As(err, &authorityErr) ||
		errors.As(err, &invalidErr) || errors.As(err, &recordErr) {
		return true
	}
	return permanentReply(err) != nil || unknownMaster(err)
}

// permanentReply is the first Redis reply in err's tree that is in
// permanentReplies, or nil.
func permanentReply(err error) error {
	var found error
	walkErrors(err, func(e error) {
		if _, ok := e.(redis.Error); !ok || found != nil {
			return
		}
		msg := strings.ToLower(e.Error())
		for _, m := range permanentReplies {
			if strings.Contains(msg, strings.ToLower(m)) {
				found = e
				return
			}
		}
	})
	return found
}

// unknownMaster: a sentinel answers get-master-addr-by-name with nil for a
// master it does not know; go-redis then reports every sentinel as
// unreachable, each with redis.Nil (the clients RESP2 makes report an
// *UnknownMasterError instead).
func unknownMaster(err error) bool {
	return errors.As(err, new(*UnknownMasterError)) || unknownMasterNil(err)
}

// unknownMasterNil is go-redis's own error for a master no sentinel knows.
func unknownMasterNil(err error) bool {
	return errors.Is(err, redis.Nil) && strings.Contains(err.Error(), "sentinel")
}

// RedisErrorReason returns an error that says, on one line, why Redis
// cannot be used: for a permanent error (PermanentRedisError), the
// server's reply, marked "sentinel:" when a sentinel gave it, where go-redis
// would report every sentinel as unreachable; other errors are returned
// as they are. The result wraps err.
func RedisErrorReason(err error) error {
	if err == nil {
		return nil
	}
	fromSentinel := strings.Contains(err.Error(), "all sentinels")
	if um := new(*UnknownMasterError); errors.As(err, um) {
		return &reasonError{(*um).msg, err}
	}
	if unknownMaster(err) {
		return &reasonError{"sentinel: no master by that name (the URL's ?master=)", err}
	}
	var reply error
	if redis.IsAuthError(err) || redis.IsPermissionError(err) {
		walkErrors(err, func(e error) {
			if _, ok := e.(redis.Error); ok && reply == nil && (redis.IsAuthError(e) || redis.IsPermissionError(e)) {
				reply = e
			}
		})
	}
	if reply == nil {
		reply = permanentReply(err)
	}
	if reply == nil {
		return err
	}
	msg := reply.Error()
	if fromSentinel {
		msg = "sentinel: " + msg
	}
	return &reasonError{msg, err}
}

type reasonError struct {
	msg string
	err error
}

func (e *reasonError) Error() string { return e.msg }
func (e *reasonError) Unwrap() error { return e.err }

// permanentReplies are Redis error replies (or parts of them) that only a
// configuration change can cure.
var permanentReplies = []string{
	"DB index is out of range",
	"invalid DB index",
	"called without any password configured", // AUTH to a server without a password (Redis 6+)
	"Client sent AUTH, but no password is set",
	"ERR invalid password",                  // Redis before 6
	"SELECT is not allowed in cluster mode", // redis:// with a database to a cluster node
	"cluster support disabled",              // redis-cluster:// to a server not in cluster mode
	"No such master with that name",         // sentinel
	"unknown command 'sentinel'",            // a sentinel URL pointed at a plain server (compared in lower case)
	"unknown command `sentinel`",            // (other quoting)
}

// walkErrors calls f for err and every error it wraps, depth first.
func walkErrors(err error, f func(error)) {
	if err == nil {
		return
	}
	f(err)
	switch x := err.(type) {
	case interface{ Unwrap() error }:
		walkErrors(x.Unwrap(), f)
	case interface{ Unwrap() []error }:
		for _, e := range x.Unwrap() {
			walkErrors(e, f)
		}
	}
}
