#include "scheduler/file_trigger.h"

#include <glob.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>

namespace batchd::scheduler {
namespace {

// Length of the valid UTF-8 sequence `s` starts with, or 0 when its first byte does not
// start one (a stray continuation byte, an overlong form, a surrogate, beyond U+10FFFF).
size_t Utf8SequenceLength(std::string_view s) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  size_t n = 0;
  uint32_t cp = 0, min = 0;
  if ((lead & 0xE0) == 0xC0) {
    n = 2, cp = lead & 0x1F, min = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    n = 3, cp = lead & 0x0F, min = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    n = 4, cp = lead & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (s.size() < n) return 0;
  for (size_t i = 1; i < n; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

}  // namespace

std::vector<FileVersion> MatchFiles(const std::string& pattern) {
  std::vector<FileVersion> out;
  glob_t g{};
  // No GLOB_PERIOD: a wildcard does not match a leading dot. Unreadable directories are
  // skipped (no GLOB_ERR): one bad directory must not hide the others' files.
  if (::glob(pattern.c_str(), 0, nullptr, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) {
      struct stat st {};
      if (::stat(g.gl_pathv[i], &st) != 0 || !S_ISREG(st.st_mode)) continue;
      out.push_back({g.gl_pathv[i], static_cast<int64_t>(st.st_size), MtimeNs(st)});
    }
  }
  ::globfree(&g);
  return out;
}

std::string EscapeKeyBytes(std::string_view bytes) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  out.reserve(bytes.size());
  while (!bytes.empty()) {
    const size_t n = Utf8SequenceLength(bytes);
    const auto c = static_cast<unsigned char>(bytes[0]);
    if (n == 0 || (n == 1 && (c < 0x20 || c == 0x7F || c == '%'))) {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
      bytes.remove_prefix(1);
    } else {
      out.append(bytes.substr(0, n));
      bytes.remove_prefix(n);
    }
  }
  return out;
}

std::string FileRunKey(const std::string& dag, const FileVersion& file) {
  return dag + "@file:" + EscapeKeyBytes(file.path) + ":" + std::to_string(file.size) + ":" +
         std::to_string(file.mtime_ns);
}

std::vector<FileVersion> FileWatch::Observe(const std::vector<FileVersion>& matched, SysMillis now, Millis settle) {
  std::map<std::string, Seen> next;
  std::vector<FileVersion> due;
  for (const auto& file : matched) {
    auto it = files_.find(file.path);
    // A new file, a new version of it, or a clock that stepped back past its sighting:
    // its settling starts now.
    if (it == files_.end() || it->second.version != file || now < it->second.since) {
      Seen seen{file, now, false};
      if (settle <= Millis(0)) due.push_back(file);
      next.emplace(file.path, std::move(seen));
      continue;
    }
    Seen seen = std::move(it->second);
    if (!seen.handled && now - seen.since >= settle) due.push_back(file);
    next.emplace(file.path, std::move(seen));
  }
  files_ = std::move(next);  // paths not matched any more are forgotten
  std::sort(due.begin(), due.end(), [](const FileVersion& a, const FileVersion& b) {
    return a.mtime_ns != b.mtime_ns ? a.mtime_ns < b.mtime_ns : a.path < b.path;
  });
  return due;
}

void FileWatch::MarkHandled(const FileVersion& file) {
  auto it = files_.find(file.path);
  if (it != files_.end() && it->second.version == file) it->second.handled = true;
}

}  // namespace batchd::scheduler
