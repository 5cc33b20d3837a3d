// Linear assignment with a cost limit: shortest augmenting paths with dual potentials
// (Jonker-Volgenant / Hungarian), run on each connected component of the allowed pairs.
//
// A cost limit L is the same as letting every row and every column stay unmatched at cost L / 2
// (as lap.lapjv's cost_limit does): a pair is worth matching only by how far it is below L. The
// solver therefore works on a square matrix of size r + c per component: real rows x real columns
// hold cost - L (allowed pairs) or +inf; row i may instead take its own dummy column (cost 0);
// column j may instead be taken by its own dummy row (cost 0); dummy rows x dummy columns cost 0.
// A perfect matching of finite cost always exists (everything to its dummy), so each search
// reaches a free column through finite reduced costs.
//
// In tracking nearly every track overlaps one or two detections, so the allowed pairs fall apart
// into tiny components: solving them one by one keeps a frame of 100 objects far from the
// O((rows + cols)^3) of one dense solve.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "checks.hpp"
#include "edgeseg/track.hpp"

namespace edgeseg {
namespace detail {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

int64_t find_root(std::vector<int64_t>& parent, int64_t x) {
  while (parent[x] != x) {
    parent[x] = parent[parent[x]];  // path halving keeps the trees flat
    x = parent[x];
  }
  return x;
}

// Minimum-cost perfect matching of a dense k x k matrix (row-major, +inf = forbidden, a finite
// perfect matching must exist). Returns the row assigned to each column. Indices are 1-based
// inside, with column 0 as the root of each search, so the loops need no special cases.
std::vector<int64_t> solve_square(const std::vector<double>& a, int64_t k) {
  const size_t n = static_cast<size_t>(k) + 1;
  std::vector<double> u(n, 0.0), v(n, 0.0), minv(n);
  std::vector<int64_t> match(n, 0), way(n, 0);  // match[col] = row (0: free)
  std::vector<char> used(n);
  for (int64_t i = 1; i <= k; ++i) {
    match[0] = i;
    int64_t j0 = 0;
    std::fill(minv.begin(), minv.end(), kInf);
    std::fill(used.begin(), used.end(), 0);
    // Dijkstra over columns with reduced costs (non-negative thanks to the potentials) until a
    // free column is reached.
    do {
      used[j0] = 1;
      const int64_t i0 = match[j0];
      const double* row = a.data() + (i0 - 1) * k - 1;  // row[j] for j in 1..k
      double delta = kInf;
      int64_t j1 = -1;
      for (int64_t j = 1; j <= k; ++j) {
        if (used[j]) continue;
        const double cur = row[j] - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      // Unreachable when a finite perfect matching exists (the callers guarantee one).
      if (j1 < 0) throw std::logic_error("linear assignment: no finite matching");
      for (int64_t j = 0; j <= k; ++j) {
        if (used[j]) {
          u[match[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (match[j0] != 0);
    // Flip the augmenting path back to the root.
    do {
      const int64_t j1 = way[j0];
      match[j0] = match[j1];
      j0 = j1;
    } while (j0 != 0);
  }
  return match;
}

}  // namespace

std::vector<int64_t> assign_edges(int64_t rows, int64_t cols, const std::vector<Edge>& edges) {
  std::vector<int64_t> result(static_cast<size_t>(rows), -1);
  if (edges.empty()) return result;
  // Union-find over rows (0..rows-1) and columns (rows..rows+cols-1).
  std::vector<int64_t> parent(static_cast<size_t>(rows + cols));
  std::iota(parent.begin(), parent.end(), int64_t{0});
  for (const Edge& e : edges) {
    const int64_t a = find_root(parent, e.row), b = find_root(parent, rows + e.col);
    if (a != b) parent[std::max(a, b)] = std::min(a, b);
  }
  // Edges by component (stable: each component sees its edges in the given order).
  std::vector<int64_t> order(edges.size()), root(edges.size());
  for (size_t e = 0; e < edges.size(); ++e) root[e] = find_root(parent, edges[e].row);
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&root](int64_t x, int64_t y) { return root[x] < root[y]; });
  std::vector<int64_t> local(static_cast<size_t>(rows + cols), -1);
  std::vector<int64_t> comp_rows, comp_cols;
  std::vector<double> a;
  for (size_t begin = 0; begin < order.size();) {
    size_t end = begin;
    while (end < order.size() && root[order[end]] == root[order[begin]]) ++end;
    if (end - begin == 1) {  // one allowed pair: it is worth matching (weight <= 0)
      const Edge& e = edges[order[begin]];
      result[e.row] = e.col;
      begin = end;
      continue;
    }
    comp_rows.clear();
    comp_cols.clear();
    for (size_t t = begin; t < end; ++t) {
      const Edge& e = edges[order[t]];
      if (local[e.row] < 0) {
        local[e.row] = 0;
        comp_rows.push_back(e.row);
      }
      if (local[rows + e.col] < 0) {
        local[rows + e.col] = 0;
        comp_cols.push_back(e.col);
      }
    }
    // Ascending indices inside a component, so the result does not depend on edge order.
    std::sort(comp_rows.begin(), comp_rows.end());
    std::sort(comp_cols.begin(), comp_cols.end());
    const int64_t r = static_cast<int64_t>(comp_rows.size());
    const int64_t c = static_cast<int64_t>(comp_cols.size());
    for (int64_t i = 0; i < r; ++i) local[comp_rows[i]] = i;
    for (int64_t j = 0; j < c; ++j) local[rows + comp_cols[j]] = j;
    const int64_t k = r + c;
    a.assign(static_cast<size_t>(k * k), kInf);
    for (int64_t i = 0; i < r; ++i) a[i * k + c + i] = 0.0;    // row i left unmatched
    for (int64_t j = 0; j < c; ++j) a[(r + j) * k + j] = 0.0;  // column j left unmatched
    for (int64_t i = r; i < k; ++i)                            // dummy x dummy
      std::fill(a.begin() + i * k + c, a.begin() + (i + 1) * k, 0.0);
    for (size_t t = begin; t < end; ++t) {
      const Edge& e = edges[order[t]];
      double& slot = a[local[e.row] * k + local[rows + e.col]];
      slot = std::min(slot, e.weight);
    }
    const std::vector<int64_t> match = solve_square(a, k);
    for (int64_t j = 0; j < c; ++j) {
      const int64_t i = match[j + 1] - 1;
      if (i < r && a[i * k + j] < kInf) result[comp_rows[i]] = comp_cols[j];
    }
    for (int64_t i : comp_rows) local[i] = -1;
    for (int64_t j : comp_cols) local[rows + j] = -1;
    begin = end;
  }
  return result;
}

}  // namespace detail

std::vector<int64_t> linear_assignment(const float* cost, int64_t rows, int64_t cols,
                                       float max_cost) {
  int64_t size = 0, both = 0;
  // rows + cols indexes the solver's scratch, rows * cols the matrix.
  if (rows < 0 || cols < 0 || detail::mul_overflows(rows, cols, &size) ||
      detail::add_overflows(rows, cols, &both))
    throw InvalidArgument("cost matrix shape (" + std::to_string(rows) + ", " +
                          std::to_string(cols) + ") is negative or too large");
  if (size > 0 && cost == nullptr) throw InvalidArgument("cost matrix is null");
  if (!std::isfinite(max_cost))
    throw InvalidArgument("max_cost must be finite, got " + std::to_string(max_cost));
  std::vector<detail::Edge> edges;
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      const float c = cost[i * cols + j];
      // NaN has no order and -inf would make one pair worth more than any sum of others.
      if (std::isnan(c) || c == -std::numeric_limits<float>::infinity())
        throw InvalidArgument("cost matrix contains NaN or -inf at (" + std::to_string(i) + ", " +
                              std::to_string(j) + ")");
      if (c <= max_cost)
        edges.push_back({i, j, static_cast<double>(c) - static_cast<double>(max_cost)});
    }
  }
  return detail::assign_edges(rows, cols, edges);
}

}  // namespace edgeseg
