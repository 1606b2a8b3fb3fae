// tests/mpctl/json_lite.h: a small JSON parser for checking mpctl's output
// (objects, arrays, strings with the escapes mpctl writes, numbers, true,
// false, null). A parse error leaves ok() false.

#ifndef MP_TESTS_MPCTL_JSON_LITE_H_
#define MP_TESTS_MPCTL_JSON_LITE_H_

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mp_test {

struct Json {
  enum Type { kNull, kBool, kNumber, kString, kArray, kObject } type = kNull;
  bool b = false;
  double n = 0;
  std::string s;
  std::vector<Json> a;
  std::map<std::string, Json> o;

  bool has(const std::string& k) const { return o.count(k) != 0; }
  const Json& operator[](const std::string& k) const { return o.at(k); }
  const Json& operator[](size_t i) const { return a.at(i); }
};

class JsonParser {
 public:
  explicit JsonParser(const std::string& text) : t_(text) {}
  bool Parse(Json* out) {
    if (!Value(out)) return false;
    Ws();
    return i_ == t_.size();
  }

 private:
  void Ws() {
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\n' ||
                              t_[i_] == '\t' || t_[i_] == '\r')) {
      ++i_;
    }
  }
  bool Lit(const char* w) {
    const std::string s(w);
    if (t_.compare(i_, s.size(), s) != 0) return false;
    i_ += s.size();
    return true;
  }
  bool Str(std::string* out) {
    if (i_ >= t_.size() || t_[i_] != '"') return false;
    ++i_;
    while (i_ < t_.size() && t_[i_] != '"') {
      char c = t_[i_++];
      if (c == '\\') {
        if (i_ >= t_.size()) return false;
        const char e = t_[i_++];
        if (e == 'n') c = '\n';
        else if (e == 't') c = '\t';
        else if (e == '"' || e == '\\' || e == '/') c = e;
        else if (e == 'u') {
          if (i_ + 4 > t_.size()) return false;
          c = static_cast<char>(std::strtoul(t_.substr(i_, 4).c_str(), nullptr, 16));
          i_ += 4;
        } else {
          return false;
        }
      } else if (static_cast<unsigned char>(c) < 0x20) {
        return false;
      }
      out->push_back(c);
    }
    if (i_ >= t_.size()) return false;
    ++i_;
    return true;
  }
  bool Value(Json* v) {
    Ws();
    if (i_ >= t_.size()) return false;
    const char c = t_[i_];
    if (c == '{') {
      v->type = Json::kObject;
      ++i_;
      Ws();
      if (i_ < t_.size() && t_[i_] == '}') return ++i_, true;
      for (;;) {
        Ws();
        std::string k;
        if (!Str(&k)) return false;
        Ws();
        if (i_ >= t_.size() || t_[i_++] != ':') return false;
        if (!Value(&v->o[k])) return false;
        Ws();
        if (i_ < t_.size() && t_[i_] == ',') { ++i_; continue; }
        if (i_ < t_.size() && t_[i_] == '}') return ++i_, true;
        return false;
      }
    }
    if (c == '[') {
      v->type = Json::kArray;
      ++i_;
      Ws();
      if (i_ < t_.size() && t_[i_] == ']') return ++i_, true;
      for (;;) {
        v->a.emplace_back();
        if (!Value(&v->a.back())) return false;
        Ws();
        if (i_ < t_.size() && t_[i_] == ',') { ++i_; continue; }
        if (i_ < t_.size() && t_[i_] == ']') return ++i_, true;
        return false;
      }
    }
    if (c == '"') {
      v->type = Json::kString;
      return Str(&v->s);
    }
    if (Lit("true")) { v->type = Json::kBool; v->b = true; return true; }
    if (Lit("false")) { v->type = Json::kBool; return true; }
    if (Lit("null")) { v->type = Json::kNull; return true; }
    const char* start = t_.c_str() + i_;
    char* end = nullptr;
    v->n = std::strtod(start, &end);
    if (end == start) return false;
    v->type = Json::kNumber;
    i_ += static_cast<size_t>(end - start);
    return true;
  }

  const std::string& t_;
  size_t i_ = 0;
};

}  // namespace mp_test

#endif  // MP_TESTS_MPCTL_JSON_LITE_H_
