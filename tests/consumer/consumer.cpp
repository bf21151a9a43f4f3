// The installed library from C++: the header compiles as C++11 and later
// (the build uses -pedantic -Werror), and the library behaves the same
// when std::thread threads share one registry.
#include <portreg.h>

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "consumer_cxx: %s:%d: check failed: %s\n", __FILE__, __LINE__,    \
                         #cond);                                                                   \
            std::exit(1);                                                                          \
        }                                                                                          \
    } while (0)

namespace
{

const int kWriters = 3;
const int kReaders = 2;
const int kRounds = 5000;

std::string writer_id(int t)
{
    return "cxx-writer-" + std::to_string(t);
}

// Writer t only ever binds ports t * 10000 + 1 .. t * 10000 + kRounds.
void write_ports(portreg_t *reg, int t)
{
    const std::string id = writer_id(t);
    for (int i = 1; i <= kRounds; i++) {
        portreg_state_t prev;
        CHECK(portreg_register(reg, id.data(), id.size(), static_cast<uint16_t>(t * 10000 + i),
                               &prev) == PORTREG_OK);
        if (i % 64 == 0)
            CHECK(portreg_unbind(reg, id.data(), id.size(), nullptr) == PORTREG_OK);
    }
}

// Readers see either nothing or a port that writer really bound.
void read_ports(portreg_t *reg, const std::atomic<bool> *stop, long *seen)
{
    long hits = 0;
    while (!stop->load(std::memory_order_acquire)) {
        for (int t = 0; t < kWriters; t++) {
            const std::string id = writer_id(t);
            uint16_t port = 0;
            if (portreg_lookup(reg, id.data(), id.size(), &port)) {
                CHECK(port > t * 10000 && port <= t * 10000 + kRounds);
                hits++;
            }
        }
        uint16_t port = 0;
        CHECK(portreg_lookup(reg, "shared", 6, &port) && port == 7000);
    }
    *seen = hits;
}

// PORTREG_ESYSTEM keeps the system's errno for portreg_last_errno(), per
// thread, even after later calls overwrite errno.
void last_errno_survives_errno()
{
    portreg_t *reg = portreg_create(nullptr);
    CHECK(reg != nullptr);
    struct rlimit old;
    CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0);
    struct rlimit none = old;
    none.rlim_cur = 0; // no descriptor can be opened: eventfd() fails, EMFILE
    CHECK(setrlimit(RLIMIT_NOFILE, &none) == 0);
    const int rc = portreg_eventfd(reg);
    CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
    CHECK(rc == PORTREG_ESYSTEM);
    CHECK(close(-1) == -1 && errno == EBADF);
    CHECK(portreg_last_errno() == EMFILE);
    int other = -1;
    std::thread([&] { other = portreg_last_errno(); }).join();
    CHECK(other == 0);
    CHECK(portreg_eventfd(reg) >= 0); // the failure changed nothing
    CHECK(portreg_last_errno() == EMFILE);
    portreg_destroy(reg);
}

} // namespace

int main()
{
    std::printf("portreg %s from C++ (%ld)\n", portreg_version_string(),
                static_cast<long>(__cplusplus));
    CHECK(portreg_version() == PORTREG_VERSION_HEX);
    CHECK(std::strcmp(portreg_err_name(PORTREG_OK), "PORTREG_OK") == 0);
    CHECK(std::strcmp(portreg_err_name(PORTREG_EFULL), "PORTREG_EFULL") == 0);
    CHECK(PORTREG_EFULL == -11 && PORTREG_ESYSTEM == -10);
    CHECK(std::strcmp(portreg_strerror(PORTREG_OK), "success") == 0);
    CHECK(portreg_last_errno() == 0);
    last_errno_survives_errno();

    portreg_options_t opts;
    portreg_options_init(&opts);
    opts.initial_capacity = 8;
    portreg_t *reg = portreg_create(&opts);
    CHECK(reg != nullptr);
    CHECK(portreg_register(reg, "shared", 6, 7000, nullptr) == PORTREG_OK);

    // A waiter in its own thread: woken by the register below, not by time.
    portreg_state_t woke = {};
    std::thread waiter([&] {
        CHECK(portreg_wait(reg, "late", 4, 0, 30LL * 1000 * 1000 * 1000, &woke) == PORTREG_OK);
    });

    std::atomic<bool> stop(false);
    std::vector<long> seen(kReaders, 0);
    std::vector<std::thread> readers;
    for (int r = 0; r < kReaders; r++)
        readers.emplace_back(read_ports, reg, &stop, &seen[r]);
    std::vector<std::thread> writers;
    for (int t = 0; t < kWriters; t++)
        writers.emplace_back(write_ports, reg, t);
    for (std::thread &w : writers)
        w.join();
    stop.store(true, std::memory_order_release);
    for (std::thread &r : readers)
        r.join();

    CHECK(portreg_register(reg, "late", 4, 8080, nullptr) == PORTREG_OK);
    waiter.join();
    CHECK(woke.status == PORTREG_BOUND && woke.port == 8080 && woke.version != 0);

    // Every writer ended bound to its last port.
    for (int t = 0; t < kWriters; t++) {
        const std::string id = writer_id(t);
        portreg_state_t s;
        CHECK(portreg_get(reg, id.data(), id.size(), &s) == PORTREG_OK);
        CHECK(s.status == PORTREG_BOUND && s.port == t * 10000 + kRounds);
    }

    // Caller-allocated opaque structs keep their alignment in C++ too.
    portreg_iter_t it;
    CHECK(reinterpret_cast<std::uintptr_t>(&it) % 8 == 0);
    portreg_entry_t e;
    int entries = 0;
    portreg_iter_init(&it, reg);
    while (portreg_iter_next(&it, &e))
        entries++;
    portreg_iter_fini(&it);
    CHECK(entries == kWriters + 2);

    portreg_snapshot_t snap;
    CHECK(portreg_snapshot(reg, &snap) == PORTREG_OK && snap.count == kWriters + 2);
    // Sorted bytewise: cxx-writer-0 .. cxx-writer-2, late, shared.
    CHECK(std::string(snap.entries[0].id, snap.entries[0].id_len) == "cxx-writer-0");
    CHECK(std::string(snap.entries[kWriters].id, snap.entries[kWriters].id_len) == "late");
    portreg_snapshot_free(&snap);

    std::uint8_t body[PORTREG_READY_MAX_SIZE];
    int len = portreg_encode_ready(70000, body, sizeof body);
    CHECK(len > 0);
    std::uint32_t raw = 0;
    CHECK(portreg_decode_ready(body, static_cast<size_t>(len), &raw) == PORTREG_OK);
    CHECK(raw == 70000);
    std::uint16_t port = 0;
    CHECK(portreg_decode_port(body, static_cast<size_t>(len), &port) == PORTREG_ERANGE);

    portreg_frame_reader_t fr;
    const std::uint8_t frame[] = {1, 3, 0, 0, 0, 0x08, 0x90, 0x3f};
    const std::uint8_t *fbody = nullptr;
    size_t used = 0, blen = 0;
    portreg_frame_reader_init(&fr, 0);
    CHECK(portreg_frame_feed(&fr, frame, sizeof frame, &used, &fbody, &blen) == 1);
    CHECK(used == sizeof frame && portreg_decode_port(fbody, blen, &port) == 0 && port == 8080);
    CHECK(portreg_frame_finish(&fr) == PORTREG_OK);
    portreg_frame_reader_fini(&fr);

    portreg_destroy(reg);
    long hits = 0;
    for (long h : seen)
        hits += h;
    std::printf("consumer_cxx: all checks passed (%d writers, %d readers, %ld bound lookups)\n",
                kWriters, kReaders, hits);
    return 0;
}
