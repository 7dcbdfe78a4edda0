// A throwaway redis-server for tests: its own directory, a unix socket and optionally a TCP port
// on 127.0.0.1, killed (and reaped) when the object goes away.
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace herald::test {

// A TCP port nothing listens on right now (bind to 0, read the port, close).
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// A self-signed certificate (EC P-256) for localhost and 127.0.0.1, made with the openssl
// command at test time: it is its own CA.
struct test_certificate {
  std::string cert;
  std::string key;
};
inline test_certificate make_test_certificate(const std::string& dir, const std::string& name) {
  test_certificate c{dir + "/" + name + ".crt", dir + "/" + name + ".key"};
  const std::string cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout '" +
      c.key + "' -out '" + c.cert + "' -days 1 -subj /CN=localhost -addext " +
      "subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("openssl req failed");
  return c;
}

// TLS on the server's TCP port (redis-server --tls-port); the unix socket stays plain.
struct redis_tls {
  std::string cert_file;
  std::string key_file;
  std::string ca_file;        // what client certificates are checked against
  bool auth_clients = false;  // --tls-auth-clients yes: a client certificate is required
};

class redis_server {
 public:
  explicit redis_server(bool tcp = false, std::string password = {},
                        std::optional<redis_tls> tls = std::nullopt,
                        std::vector<std::string> extra_args = {})
      : password_(std::move(password)), tls_(std::move(tls)) {
    char tmpl[] = "/tmp/herald-redis-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    socket_ = dir_ + "/redis.sock";
    // A free port can be taken by another test between free_port() and redis-server's bind
    // (ctest runs two at once): then another pair of ports, a few times. "{free_port}" in an
    // argument is a port picked the same way (a cluster node's bus port); a restart (start())
    // keeps the ports of the first start.
    for (int attempt = 1;; ++attempt) {
      port_ = tcp ? free_port() : 0;
      extra_ = extra_args;
      for (auto& a : extra_) {
        if (a == "{free_port}") a = std::to_string(free_port());
      }
      try {
        start();
        return;
      } catch (const std::runtime_error&) {
        std::ifstream log(dir_ + "/redis.log");
        const std::string text((std::istreambuf_iterator<char>(log)),
                               std::istreambuf_iterator<char>());
        if (attempt == 5 || text.find("Address already in use") == std::string::npos) throw;
      }
    }
  }
  ~redis_server() {
    kill();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  const std::string& socket_path() const { return socket_; }
  int port() const { return port_; }
  std::string unix_url() const { return "unix://" + socket_; }

  void start() {
    std::vector<std::string> args{"redis-server",
                                  "--port",
                                  std::to_string(tls_ ? 0 : port_),
                                  "--bind",
                                  "127.0.0.1",
                                  "--unixsocket",
                                  socket_,
                                  "--dir",
                                  dir_,
                                  "--save",
                                  "",
                                  "--appendonly",
                                  "no",
                                  "--daemonize",
                                  "no",
                                  "--loglevel",
                                  "warning",
                                  "--logfile",
                                  dir_ + "/redis.log"};
    if (!password_.empty()) {
      args.push_back("--requirepass");
      args.push_back(password_);
    }
    if (tls_) {
      for (const auto& a :
           {std::string("--tls-port"), std::to_string(port_), std::string("--tls-cert-file"),
            tls_->cert_file, std::string("--tls-key-file"), tls_->key_file,
            std::string("--tls-ca-cert-file"), tls_->ca_file, std::string("--tls-auth-clients"),
            std::string(tls_->auth_clients ? "yes" : "no")})
        args.push_back(a);
    }
    for (auto a : extra_) {
      if (const auto at = a.find("{dir}"); at != std::string::npos) a.replace(at, 5, dir_);
      args.push_back(a);
    }
    pid_ = ::fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args)
        argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp("redis-server", argv.data());
      ::_exit(127);
    }
    // Ready when the unix socket accepts a connection.
    for (int i = 0; i < 500; ++i) {
      const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_.c_str());
      const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
      ::close(fd);
      if (ok) return;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error(
            "redis-server exited at start (is it installed? ./scripts/test installs it)");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    throw std::runtime_error("redis-server did not start");
  }

  // SIGSTOP freezes the server: connections stay open, nothing is answered (SIGCONT thaws).
  void signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }

  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    std::error_code ec;
    std::filesystem::remove(socket_, ec);
  }

 private:
  std::string dir_;
  std::string socket_;
  std::string password_;
  std::optional<redis_tls> tls_;
  std::vector<std::string> extra_;  // "{dir}" stands for the server's directory
  int port_ = 0;
  pid_t pid_ = -1;
};

// The output of a command (popen), for redis-cli.
inline std::string run_output(const std::string& cmd) {
  std::string out;
  if (FILE* f = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
      out.append(buf, n);
    ::pclose(f);
  }
  return out;
}

// A Redis Cluster of `primaries` redis-servers on 127.0.0.1 (no replicas), slots spread by
// redis-cli --cluster create; ready once every node says cluster_state:ok.
class redis_cluster {
 public:
  explicit redis_cluster(int primaries = 3) {
    std::string addresses;
    for (int i = 0; i < primaries; ++i) {
      nodes_.push_back(std::make_unique<redis_server>(
          true, std::string(), std::nullopt,
          std::vector<std::string>{"--cluster-enabled", "yes", "--cluster-config-file",
                                   "{dir}/nodes.conf", "--cluster-node-timeout", "2000",
                                   "--cluster-port", "{free_port}"}));
      addresses += " 127.0.0.1:" + std::to_string(nodes_.back()->port());
    }
    const std::string create = "redis-cli --cluster create" + addresses +
                               " --cluster-replicas 0 --cluster-yes >/dev/null 2>&1";
    if (std::system(create.c_str()) != 0)
      throw std::runtime_error("redis-cli --cluster create failed");
    for (int attempt = 0; attempt < 500; ++attempt) {
      bool ok = true;
      for (const auto& n : nodes_) {
        ok = ok && cli(n->port(), "CLUSTER INFO").find("cluster_state:ok") != std::string::npos;
      }
      if (ok) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("the cluster did not reach cluster_state:ok");
  }

  const std::vector<std::unique_ptr<redis_server>>& nodes() const { return nodes_; }
  // redis-cli -p PORT ARGS (arguments split on spaces), its output.
  static std::string cli(int port, const std::string& args) {
    return run_output("redis-cli -p " + std::to_string(port) + " " + args + " 2>&1");
  }

 private:
  std::vector<std::unique_ptr<redis_server>> nodes_;
};

// A TCP listener that never answers. With `full`, its accept queue is filled first, so new
// connections do not even complete (a connect that hangs); without, connections complete and
// nothing is ever read or written (a command that hangs).
class black_hole {
 public:
  explicit black_hole(bool full) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd_, full ? 0 : 16);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    if (full) {
      // Fill the accept queue: later SYNs are dropped and connects hang.
      for (int i = 0; i < 4; ++i) {
        const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        ::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        fillers_.push_back(c);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ~black_hole() {
    for (int c : fillers_)
      ::close(c);
    ::close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::vector<int> fillers_;
};

}  // namespace herald::test
